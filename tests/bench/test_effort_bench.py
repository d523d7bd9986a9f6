"""bench/effort_bench.py: the action count per review card and the catalog micro-F1, on constructed cards,
and the bench's reading of a REST card against the review page's own chips (annotation.selectors.review)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from annotation.models import Suggestion, Tag
from annotation.selectors.review import CARD_MAX_UNSELECTED, CARD_MIN_SCORE, review_card
from annotation.taxonomy.names import normalize_tag_name
from tests.factories import (
    ModelVersionFactory,
    OperatorFactory,
    ProductFactory,
    ProductTagFactory,
    TagFactory,
    suggestions_create,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_bench():
    spec = importlib.util.spec_from_file_location("effort_bench", REPO_ROOT / "bench" / "effort_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
RULE = bench.CardRule(min_score=0.05, max_unselected=10, precheck=True, fold=normalize_tag_name)


def _suggestion(tag: str, score: float, selected: bool | None = None) -> dict:
    return {"tag": tag, "score": score, "selected": score >= 0.5 if selected is None else selected}


def _card(suggestions: list[dict], approved: tuple[str, ...] = ()) -> dict:
    return {"suggestions": suggestions, "approved_tags": [{"tag": t, "source": "import"} for t in approved]}


def test_a_right_card_takes_one_action() -> None:
    card = _card([_suggestion("red", 0.9), _suggestion("dress", 0.8), _suggestion("blue", 0.2)])
    effort = bench.card_effort(card, ["red", "dress"], RULE)
    assert (effort.actions, effort.unchanged, effort.baseline) == (1, True, 3)


def test_each_kind_of_error_costs_one_action() -> None:
    card = _card(
        [
            _suggestion("red", 0.9),  # right, pre-checked: free
            _suggestion("wool", 0.7),  # wrong, pre-checked: one click to uncheck
            _suggestion("dress", 0.3),  # right, shown unchecked: one click
            _suggestion("silk", 0.2),  # wrong, unchecked: free
        ]
    )
    effort = bench.card_effort(card, ["red", "dress", "summer"], RULE)  # "summer" is not on the card: typed
    assert (effort.wrong_checked, effort.right_unchecked, effort.typed) == (1, 1, 1)
    assert effort.actions == 4
    assert not effort.unchanged
    assert effort.baseline == 4


def test_names_compare_as_the_app_folds_them() -> None:
    card = _card([_suggestion("T-Shirt", 0.9)])
    assert bench.card_effort(card, ["t shirt"], RULE).actions == 1


def test_only_the_best_ten_unselected_chips_above_the_floor_are_shown() -> None:
    # 12 unselected chips >= 0.05 (best first: u00 .. u11) and one below the floor.
    suggestions = [_suggestion(f"u{i:02d}", 0.45 - i * 0.01) for i in range(12)]
    suggestions.append(_suggestion("low", 0.04))
    card = _card(suggestions)
    visible = {c.key for c in bench.card_chips(card, RULE) if c.visible}
    assert visible == {f"u{i:02d}" for i in range(10)}
    # A gold tag behind "more" or below the floor is typed; one among the ten shown takes a click.
    effort = bench.card_effort(card, ["u03", "u10", "low"], RULE)
    assert (effort.right_unchecked, effort.typed, effort.actions) == (1, 2, 4)


def test_selected_and_approved_chips_do_not_use_up_the_unselected_places() -> None:
    suggestions = [_suggestion(f"s{i}", 0.9 - i * 0.01) for i in range(5)]  # selected
    suggestions += [_suggestion("approved", 0.3)]  # approved: always shown, checked
    suggestions += [_suggestion(f"u{i:02d}", 0.29 - i * 0.01) for i in range(11)]
    card = _card(suggestions, approved=("approved", "kept from import"))
    chips = {c.key: c for c in bench.card_chips(card, RULE)}
    assert chips["approved"].visible and chips["approved"].checked
    assert chips["kept from import"].visible and chips["kept from import"].checked  # not suggested
    assert [f"u{i:02d}" for i in range(11) if chips[f"u{i:02d}"].visible] == [f"u{i:02d}" for i in range(10)]
    gold = [f"s{i}" for i in range(5)] + ["approved", "kept from import"]
    assert bench.card_effort(card, gold, RULE).actions == 1


def test_without_precheck_every_right_selected_chip_takes_a_click() -> None:
    rule = bench.CardRule(min_score=0.05, max_unselected=10, precheck=False, fold=normalize_tag_name)
    card = _card([_suggestion("red", 0.9), _suggestion("wool", 0.7)])
    effort = bench.card_effort(card, ["red"], rule)
    assert (effort.wrong_checked, effort.right_unchecked, effort.actions) == (0, 1, 2)


def test_window_summary() -> None:
    efforts = [bench.CardEffort(0, 0, 0, 2), bench.CardEffort(1, 0, 1, 3), bench.CardEffort(0, 0, 0, 1)]
    summary = bench.window_summary(efforts)
    assert summary["actions_median"] == 1.0
    assert summary["actions_mean"] == pytest.approx(5 / 3, abs=1e-3)
    assert summary["unchanged_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["baseline_mean"] == pytest.approx(3.0)
    assert (summary["wrong_checked"], summary["typed"]) == (1, 1)


def test_catalog_micro_f1_and_pair_precision() -> None:
    gold = {"a": {"x", "y"}, "b": {"z"}, "c": {"x"}}
    # a: reviewed (= gold); b: one wrong tag; c: missing from the catalog (no tag).
    catalog = {"a": {"x", "y"}, "b": {"w"}}
    # tp 2, fp 1, fn 2: P 2/3, R 2/4, F1 = 2PR / (P + R) = 4/7
    assert bench.catalog_micro_f1(gold, catalog) == pytest.approx(4 / 7)
    assert bench.catalog_micro_f1(gold, gold) == pytest.approx(1.0)
    assert bench.pair_precision(gold, {"a": {"x", "w"}, "b": {"z"}}) == pytest.approx(2 / 3)
    assert bench.pair_precision(gold, {}) is None


def test_audit_figures_pool_every_version_s_audited_pairs() -> None:
    # The shape of GET /api/v1/auto-approval/ (AutoApprovalStateSerializer), trimmed to what the bench reads.
    state = {
        "enabled": True,
        "stopped": False,
        "stop": None,
        "products_out_of_queue": 40,
        "versions": [
            {
                "is_active": True,
                "audit": {"pairs": 100, "confirmed": 99, "precision": 0.99, "lower_bound": 0.95},
                "no_approval_reason": None,
                "queue_exit_reason": "Products v3 approved tags on stay in the review queue: ...",
            },
            {
                "is_active": False,
                "audit": {"pairs": 50, "confirmed": 48, "precision": 0.96, "lower_bound": 0.88},
            },
            {
                "is_active": False,
                "audit": {"pairs": 0, "confirmed": 0, "precision": None, "lower_bound": None},
            },
        ],
    }
    figures = bench.audit_figures(state)
    assert figures["audit_precision"] == pytest.approx(147 / 150, abs=1e-4)
    assert (figures["audit_pairs"], figures["active_audit_precision"], figures["out_of_queue"]) == (
        150,
        0.99,
        40,
    )
    assert figures["active_queue_exit_reason"].startswith("Products v3 approved")
    assert figures["active_no_approval_reason"] is None
    assert bench.audit_figures({"enabled": True, "versions": []})["audit_precision"] is None


def _suggested_product(version, scores: dict[str, float], approved: tuple[str, ...] = ()):
    tags = {
        name: Tag.objects.filter(name=name).first() or TagFactory(name=name) for name in {*scores, *approved}
    }
    product = ProductFactory(priority=1.0)
    suggestions_create(product, version, {tags[name]: score for name, score in scores.items()})
    for name in approved:
        ProductTagFactory(product=product, tag=tags[name], source="import")
    return product


@pytest.mark.django_db
def test_the_bench_reads_a_rest_card_as_the_review_page_shows_it(empty_cache) -> None:
    """A real product's card from POST /api/v1/review/next/, read by the bench, has the review page's own
    visible and checked chips (annotation.selectors.review.review_card); its count agrees with the
    server's ``edited`` on submit."""
    rule = bench.app_card_rule(precheck=True)
    assert (rule.min_score, rule.max_unselected) == (CARD_MIN_SCORE, CARD_MAX_UNSELECTED)
    version = ModelVersionFactory(is_active=True)
    scores = {f"sel {i}": 0.9 - i * 0.05 for i in range(3)}  # selected (>= 0.5)
    scores |= {f"uns {i:02d}": 0.45 - i * 0.03 for i in range(15)}  # 0.45 down to 0.03
    product = _suggested_product(version, scores, approved=("uns 02", "import only"))
    api = APIClient()
    api.force_authenticate(OperatorFactory())

    card = api.post("/api/v1/review/next/").json()
    assert card["product"]["external_id"] == product.external_id
    product.refresh_from_db()
    page = {normalize_tag_name(c.name): (c.visible, c.checked) for c in review_card(product=product).chips}
    read = {c.key: (c.visible, c.checked) for c in bench.card_chips(card, rule)}
    assert read == page
    # Behind "more": uns 11-13 (past the ten places; the approved uns 02 takes none) and uns 14 (< 0.05).
    assert sorted(name for name, (visible, _) in page.items() if not visible) == [
        "uns 11",
        "uns 12",
        "uns 13",
        "uns 14",
    ]

    gold = ["sel 0", "sel 1", "uns 02", "import only", "uns 12"]  # "sel 2" wrong, "uns 12" behind "more"
    effort = bench.card_effort(card, gold, rule)
    assert (effort.wrong_checked, effort.right_unchecked, effort.typed, effort.actions) == (1, 0, 1, 3)
    url = f"/api/v1/products/{product.external_id}/review/"
    result = api.post(url, {"tags": gold, "claim": card["claim"]}, format="json").json()
    assert result["edited"] is True

    right = _suggested_product(version, {"sel 0": 0.8, "uns 00": 0.3})
    card = api.post("/api/v1/review/next/").json()
    assert card["product"]["external_id"] == right.external_id
    effort = bench.card_effort(card, ["sel 0"], rule)
    assert effort.unchanged
    url = f"/api/v1/products/{right.external_id}/review/"
    result = api.post(url, {"tags": ["sel 0"], "claim": card["claim"]}, format="json").json()
    assert result["edited"] is False


@pytest.mark.django_db
@pytest.mark.parametrize("gold", [["sure pick"], ["sure pick", "weak pick"]])
def test_a_selected_tag_below_the_precheck_floor_starts_open_everywhere(empty_cache, settings, gold) -> None:
    """The model selects "weak pick" at 0.3, below REVIEW_PRECHECK_MIN_SCORE: the review page, the REST
    card's ``checked`` and the bench all start it unchecked, and the server's ``edited`` agrees with the
    bench's count whether it was right (one click to check it) or wrong (the card was right as shown)."""
    settings.REVIEW_PRECHECK_MIN_SCORE = 0.4
    version = ModelVersionFactory(is_active=True)
    product = _suggested_product(version, {"sure pick": 0.8, "weak pick": 0.3})
    Suggestion.objects.filter(product=product, tag__name="weak pick").update(selected=True)
    api = APIClient()
    api.force_authenticate(OperatorFactory())
    card = api.post("/api/v1/review/next/").json()
    assert {s["tag"]: (s["selected"], s["checked"]) for s in card["suggestions"]} == {
        "sure pick": (True, True),
        "weak pick": (True, False),
    }
    product.refresh_from_db()
    page = {c.name: c.checked for c in review_card(product=product).chips}
    assert page == {"sure pick": True, "weak pick": False}
    rule = bench.app_card_rule.__wrapped__(precheck=True)  # not the cached rule: this test's setting
    assert rule.precheck_min_score == 0.4
    assert {c.key: c.checked for c in bench.card_chips(card, rule)} == page

    effort = bench.card_effort(card, gold, rule)
    assert effort.actions == len(gold)  # submit, plus one click on "weak pick" when it is right
    url = f"/api/v1/products/{product.external_id}/review/"
    result = api.post(url, {"tags": gold, "claim": card["claim"]}, format="json").json()
    assert result["edited"] is (not effort.unchanged) is (len(gold) == 2)


def _run(median: float, catalog_f1: float, audit: float | None = None, *, reviews: int = 2000) -> dict:
    window = {
        "window": 1,
        "reviews": reviews,
        "cards": 200,
        "actions_median": median,
        "actions_mean": median + 0.4,
        "unchanged_share": 0.6,
        "baseline_mean": 3.5,
        "wrong_checked": 40,
        "right_unchecked": 20,
        "typed": 20,
        "catalog_f1": catalog_f1,
        "training": {"version": "v2", "active": True, "valid_micro_f1": 0.9, "seconds": 30.0},
        "audit_precision": audit,
        "audit_pairs": 300,
    }
    start = {"window": 0, "reviews": 0, "catalog_f1": 0.7, "training": None}
    return {
        "available": True,
        "pool": 5000,
        "tags": 300,
        "reviews": reviews,
        "setup_s": 100.0,
        "wall_s": 900.0,
        "windows": [start, window],
    }


def test_targets_and_the_readme_section() -> None:
    runs = {
        "a": {"review": _run(1, 0.99), "auto": _run(1, 0.975, 0.99)},
        "b": {"review": _run(2, 0.95), "auto": _run(2, 0.99, 0.97)},  # audit below 0.98
        "c": {
            "review": _run(1, 0.99, reviews=1200),
            "auto": {"available": False, "note": bench.NOT_AVAILABLE},
        },
    }
    verdict = bench.targets(runs)
    assert verdict["median"]["met_sets"] == ["a"]  # c stopped short of 2,000 reviews
    assert verdict["catalog"]["met_sets"] == ["a"]
    assert not verdict["median"]["met"] and not verdict["catalog"]["met"]
    section = bench.render_section({"runs": runs})
    assert "| a | 5,000 | 2,000 | 1 / 1.40 | 60% | 3.50 | 0.7000 → 0.9900 | 0.9750 | 0.9900 | 15 |" in section
    assert "0.20 / 0.10 / 0.10" in section  # wrong checked / right unchecked / typed per card
    assert f"**c, auto**: {bench.NOT_AVAILABLE}." in section
    header = next(line for line in section.splitlines() if "| stopped |" in line)
    row = next(
        line for line in section.splitlines() if line.startswith("| 1 | 2,000 | 1 |") and "0.9750" in line
    )
    assert header.count("|") == row.count("|")  # one header cell per auto column, "stopped" included
    assert "stopped by the audit" not in section
    runs["a"]["auto"]["windows"][-1].update(
        stopped=True,
        stop={"reason": "v4: the audit kept 148 of 149", "audit": {"interval": [0.9632, 0.9998]}},
    )
    section = bench.render_section({"runs": runs})
    assert "stop rule: v4: the audit kept 148 of 149 (two-sided interval 0.963–1.000)" in section


def test_products_the_import_would_refuse_are_not_drawn(tmp_path) -> None:
    rows = [
        {"id": f"p{i}", "title": "x" * (1001 if i % 3 == 0 else 10), "tags": ["a", "A"]} for i in range(30)
    ]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = bench.set_data_load(
        path, seed_size=5, pool_size=100, seed=1, fold=normalize_tag_name, max_title=1000
    )
    drawn = data.seed + data.pool
    assert len(drawn) == 20 and all(len(r["title"]) <= 1000 for r in drawn)
    assert len({r["id"] for r in drawn}) == 20  # seed and pool do not overlap
    assert data.too_long == 10
    assert data.tag_names == ["a"]  # "a" and "A" fold to one tag


@pytest.mark.django_db
def test_the_best_pick_starts_checked_when_no_selected_tag_reaches_the_floor(empty_cache, settings) -> None:
    settings.REVIEW_PRECHECK_MIN_SCORE = 0.4
    version = ModelVersionFactory(is_active=True)
    product = _suggested_product(version, {"weak pick": 0.3, "weaker pick": 0.2, "other": 0.1})
    Suggestion.objects.filter(product=product, tag__name__in=["weak pick", "weaker pick"]).update(
        selected=True
    )
    api = APIClient()
    api.force_authenticate(OperatorFactory())
    card = api.post("/api/v1/review/next/").json()
    assert {s["tag"]: s["checked"] for s in card["suggestions"]} == {
        "weak pick": True,
        "weaker pick": False,
        "other": False,
    }
    rule = bench.app_card_rule.__wrapped__(precheck=True)
    effort = bench.card_effort(card, ["weak pick"], rule)
    assert effort.unchanged
    url = f"/api/v1/products/{product.external_id}/review/"
    result = api.post(url, {"tags": ["weak pick"], "claim": card["claim"]}, format="json").json()
    assert result["edited"] is False


def test_the_uploaded_catalog_withholds_the_category_path_unless_asked(tmp_path) -> None:
    rows = [
        {"id": f"p{i}", "title": f"Diapers {i}", "category_path": ["Baby Care", "Diapers"],
         "tags": ["baby care", "diapers"], "source": "x"}
        for i in range(12)
    ]  # fmt: skip
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = bench.set_data_load(path, seed_size=2, pool_size=10, seed=1, fold=normalize_tag_name)
    for keep in (False, True):
        out = tmp_path / f"catalog-{keep}.jsonl"
        bench.catalog_file_write(data, out, keep_category_path=keep)
        uploaded = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(uploaded) == 12 and sum("tags" in r for r in uploaded) == 2  # the seed alone is tagged
        assert all(("category_path" in r) is keep and "source" not in r for r in uploaded)


def _curve_run(f1s: list[float], actions: list[int], *, typing: float = 4.0, pool: int = 1000) -> dict:
    """A run whose windows of 100 cards cost ``actions`` in all and leave the catalog at ``f1s``."""
    windows = [{"window": 0, "reviews": 0, "catalog_f1": f1s[0], "training": None}]
    for i, (f1, spent) in enumerate(zip(f1s[1:], actions, strict=True), start=1):
        windows.append(
            {
                "window": i,
                "reviews": 100 * i,
                "cards": 100,
                "actions_total": spent,
                "actions_mean": spent / 100,
                "actions_median": 1.0,
                "unchanged_share": 0.5,
                "baseline_mean": typing,
                "wrong_checked": 0,
                "right_unchecked": 0,
                "typed": 0,
                "catalog_f1": f1,
            }
        )
    return {"available": True, "pool": pool, "tags": 10, "reviews": 100 * len(actions), "windows": windows,
            "setup_s": 1.0, "wall_s": 60.0}  # fmt: skip


def test_actions_to_reach_a_catalog_accuracy() -> None:
    points = bench.effort_curve(_curve_run([0.5, 0.7, 0.9], [300, 200]))
    assert points == [(0, 0.0, 0.5), (100, 300, 0.7), (200, 500, 0.9)]
    assert bench.actions_to_reach(points, 0.5) == 0.0  # the seed model is there before anyone works
    assert bench.actions_to_reach(points, 0.8) == pytest.approx(400.0)  # halfway through the second window
    assert bench.actions_to_reach(points, 0.95) is None
    assert bench.catalog_at_actions(points, 0) == 0.5
    assert bench.catalog_at_actions(points, 400) == pytest.approx(0.8)
    assert bench.catalog_at_actions(points, 501) is None
    # Runs stored before actions_total: the window's mean times its cards.
    old = _curve_run([0.5, 0.7], [250])
    del old["windows"][1]["actions_total"]
    assert bench.effort_curve(old)[-1] == (100, 250.0, 0.7)


def test_typing_by_hand_reaches_an_accuracy_by_the_share_of_the_pool_typed() -> None:
    # Half the pool typed: recall 0.5, precision 1, micro-F1 2/3.
    assert bench.typing_actions_to_reach(2 / 3, pool=1000, typing_mean=4.0) == pytest.approx(2000.0)
    assert bench.typing_actions_to_reach(1.0, pool=1000, typing_mean=4.0) == pytest.approx(4000.0)


def test_the_readme_compares_the_queue_orders_at_the_accuracy_both_reach() -> None:
    runs = {
        "s": {
            # The app's queue: dearer cards, more accuracy for them.
            "review": _curve_run([0.5, 0.8, 0.9], [300, 300], typing=5.0),
            "random": _curve_run([0.5, 0.6, 0.8], [200, 200], typing=4.0),
        },
        "t": {"review": _curve_run([0.6, 0.7], [150])},
    }
    section = bench.render_section({"runs": runs})
    rows = [line for line in section.splitlines() if line.startswith(("| s |", "| t |"))]
    # Goal 0.8 (both reach it): the app's queue after 300 actions, random after 400 (75%); typing the random
    # run's 4.0 per product to micro-F1 0.8 takes 1000 x 0.8 / 1.2 x 4.0 = 2,667 actions. After random's 400
    # actions the app's queue stands at 0.8 + 0.1 x 100 / 300.
    assert (
        "| s | the app's (active learning) | 200 | 600 | 3.00 | 0.5000 → 0.9000 | 400: 0.8333 | 0.8000 | 300 | 75% "
        "| 2,667 |" in rows
    )
    assert (
        "| s | random | 200 | 400 | 2.00 | 0.5000 → 0.8000 | 400: 0.8000 | 0.8000 | 400 | — | 2,667 |" in rows
    )
    # Without a random run the typing cost comes from the run's own cards.
    assert (
        "| t | the app's (active learning) | 100 | 150 | 1.50 | 0.6000 → 0.7000 | 150: 0.7000 | 0.7000 | 150 | — "
        "| 2,154 |" in rows
    )
    assert "**s, random**" in section  # its windows are shown like the other modes'
