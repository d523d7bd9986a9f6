"""Smoke test of bench/quality_bench.py: split, threshold tuning, scoring and the report, on small real
samples of ../shared/data with the scikit-learn peer only (no peer virtualenvs, no Django)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SAMPLES = {"amazon_uk_toys": 500, "zh_ecommerce_ner_acl19": 400}
# micro-F1 floors far above chance for a few hundred training products (measured: ~0.65 and ~0.17;
# the Chinese sample has ~1,000 distinct tags, most seen once or twice).
MICRO_F1_FLOOR = {"amazon_uk_toys": 0.45, "zh_ecommerce_ner_acl19": 0.08}


def _load_bench():
    spec = importlib.util.spec_from_file_location("quality_bench", REPO_ROOT / "bench" / "quality_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first lines of two real sets (one English, one Chinese), in the <set>/dev.jsonl layout."""
    missing = [name for name in SAMPLES if not (SHARED_DATA / name / "dev.jsonl").is_file()]
    if missing:
        pytest.skip(f"shared data not found under {SHARED_DATA}: {missing}")
    root = tmp_path_factory.mktemp("data")
    for name, n_lines in SAMPLES.items():
        lines = (SHARED_DATA / name / "dev.jsonl").read_text(encoding="utf-8").splitlines()[:n_lines]
        (root / name).mkdir()
        (root / name / "dev.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_split_is_seeded_and_keeps_ids_and_titles_in_one_part(sample_dir: Path) -> None:
    products = bench.load_products(sample_dir / "amazon_uk_toys" / "dev.jsonl")
    # Variants: the same title with other case and spacing under new ids must follow their original.
    variants = [
        dataclasses.replace(p, id=f"{p.id}-variant", title=f"  {p.title.upper()}  ") for p in products[:40]
    ]
    split = bench.split_products(products + variants, seed=3)
    assert bench.split_leaks(split) == []
    part_of = {p.id: part for part, rows in split.parts().items() for p in rows}
    assert all(part_of[v.id] == part_of[v.id.removesuffix("-variant")] for v in variants)
    n = len(products) + len(variants)
    assert abs(len(split.test) - 0.2 * n) <= 3 and abs(len(split.valid) - 0.1 * n) <= 3
    assert len(split.train) + len(split.valid) + len(split.test) == n

    again = bench.split_products(products + variants, seed=3)
    other = bench.split_products(products + variants, seed=4)
    assert [p.id for p in again.test] == [p.id for p in split.test]
    assert [p.id for p in other.test] != [p.id for p in split.test]

    capped = bench.split_products(products, seed=3, max_train=100, max_test=50)
    assert len(capped.train) == 100 and len(capped.test) == 50


def test_split_rejects_a_set_too_small_for_three_parts(sample_dir: Path) -> None:
    products = bench.load_products(sample_dir / "amazon_uk_toys" / "dev.jsonl")[:3]
    with pytest.raises(ValueError, match="empty"):
        bench.split_products(products, seed=0)


def test_global_threshold_maximises_micro_f1_with_at_least_one_tag() -> None:
    rankings = [
        [("a", 0.9), ("b", 0.6), ("c", 0.2)],
        [("b", 0.8), ("a", 0.5), ("c", 0.4)],
        [("c", 0.3), ("a", 0.1)],
    ]
    gold = [{"a", "b"}, {"b"}, {"c", "a"}]
    threshold = bench.tune_global_threshold(rankings, gold)
    # Candidates: top tags only (F1 6/8), >=0.6 (8/9 ~ 0.889), >=0.5 (8/10), >=0.1 (10/12 ~ 0.833).
    assert threshold == pytest.approx(0.6)
    assert bench.apply_threshold(rankings, threshold) == [["a", "b"], ["b"], ["c"]]
    # When extra tags only hurt, only the top tag is kept.
    assert bench.tune_global_threshold([[("a", 0.9), ("x", 0.8)]], [{"a"}]) == float("inf")
    assert bench.apply_threshold([[("a", 0.9), ("x", 0.8)], []], float("inf")) == [["a"], []]


def test_peer_text_drops_the_category_path_and_segments_chinese(sample_dir: Path) -> None:
    toy = bench.load_products(sample_dir / "amazon_uk_toys" / "dev.jsonl")[0]
    assert toy.category_path
    assert bench.without_category(toy).category_path is None
    zh = bench.load_products(sample_dir / "zh_ecommerce_ner_acl19" / "dev.jsonl")[0]
    text = bench.peer_text(zh)
    assert " " in text and len(text.split()) > 1
    assert "|" not in text


@pytest.mark.slow
def test_bench_runs_the_sklearn_peer_end_to_end(sample_dir: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{bench.README_START}\nold\n{bench.README_END}\ntail\n", encoding="utf-8")
    status = bench.main(
        [
            "--data-dir",
            str(sample_dir),
            "--systems",
            "sklearn-ovr-lr",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-write-readme",
            "--threads",
            "1",
        ]  # fmt: skip
    )
    assert status == 0  # TagStudio not run: nothing to miss
    payload = json.loads((tmp_path / "cache" / "results" / "quality-latest.json").read_text(encoding="utf-8"))
    by_set = {r["set"]: r for r in payload["results"]}
    assert set(by_set) == set(SAMPLES)
    for name, result in by_set.items():
        row = result["systems"]["sklearn-ovr-lr"]
        assert "error" not in row, row
        metrics = row["metrics"]
        assert MICRO_F1_FLOOR[name] < metrics["micro_f1"] <= 1.0, (name, metrics)
        assert metrics["p@1"] >= metrics["p@5"]
        assert result["n_train"] + result["n_valid"] + result["n_test"] == SAMPLES[name]

    summary = bench.check_targets(payload["results"], ["sklearn-ovr-lr"])[1]
    tables = bench.render_tables(payload["results"], ["sklearn-ovr-lr"], summary)
    assert "| sklearn-ovr-lr |" in tables and "amazon_uk_toys" in tables
    latest = tmp_path / "cache" / "results" / "quality-latest.json"
    assert bench.main(["--report-from", str(latest), "--no-write-readme"]) == 0
    bench.write_readme("new section", readme)
    assert readme.read_text(encoding="utf-8") == (
        f"# x\n{bench.README_START}\nnew section\n{bench.README_END}\ntail\n"
    )


def test_a_failing_system_is_an_error_row_not_a_crash(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(bench.PEERS, "broken-peer", bench.PeerSpec(None, "no_such_runner.py"))
    args = bench.parse_args(["--cache-dir", str(tmp_path / "cache"), "--max-train", "50"])
    result = bench.bench_set(
        "amazon_uk_toys", sample_dir / "amazon_uk_toys" / "dev.jsonl", ["broken-peer"], args
    )
    assert "no_such_runner.py" in result["systems"]["broken-peer"]["error"]
    tables = bench.render_tables([result], ["broken-peer"], {})
    assert "| broken-peer | error |" in tables and "**Errors**" in tables


def _result(name: str, tagstudio: float, peer: float) -> dict:
    info = {
        "train_cold_s": 30.0,
        "train_warm_s": 10.0,
        "peak_rss_mb": 900.0,
        "n_predict": 100,
        "predict_per_s": 500.0,
    }
    return {
        "set": name,
        "systems": {
            "tagstudio": {"metrics": {"micro_f1": tagstudio}, "info": info},
            "pecos-xr-linear": {"metrics": {"micro_f1": peer}},
        },
    }


def test_verdict_holds_issue_18s_lead_on_every_set_and_on_average() -> None:
    systems = ["tagstudio", "pecos-xr-linear"]
    # Errors 0.10 vs 0.20 and 0.05 vs 0.10: 50% on each set.
    assert bench.check_targets([_result("a", 0.90, 0.80), _result("b", 0.95, 0.90)], systems)[0] == []
    # Set b leads by 5% only (error 0.095 vs 0.100): a per-set miss; the mean (27.5%) still holds.
    missed = bench.check_targets([_result("a", 0.90, 0.80), _result("b", 0.905, 0.90)], systems)[0]
    assert len(missed) == 1 and missed[0].startswith("b: error reduction vs pecos-xr-linear 5.0% < 10%")
    # 12% on both: every set holds, the mean does not (issue 18's 20%), issue 3's 15% neither.
    missed = bench.check_targets([_result("a", 0.912, 0.90), _result("b", 0.912, 0.90)], systems)[0]
    assert missed == ["mean error reduction vs the best peer 12.0% < 15%"]
    # 18% on both: issue 3's mean holds, issue 18's does not.
    missed = bench.check_targets([_result("a", 0.918, 0.90), _result("b", 0.918, 0.90)], systems)[0]
    assert missed == ["mean error reduction vs the best peer 18.0% < 20% (issue 18)"]
