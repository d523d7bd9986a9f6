"""Precision-gated auto-approval against the real services (PostgreSQL): cuts from a version's held-out
slice and reviews, the approval pass, leaving the queue, the audit draw, the review hook, the stop rule,
the revert, REST (settings, state, revert) and the export's ``source``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from annotation.models import (
    AutoApprovalAudit,
    AutoApprovalVersion,
    Product,
    ProductTag,
    ReviewStatus,
    Setting,
    TagSource,
)
from annotation.selectors import exports
from annotation.selectors.auto_approval import (
    STOP_KEY,
    AutoApprovalSettings,
    audit_figures,
    auto_approval_settings,
    auto_approval_state,
)
from annotation.services.auto_approval import (
    AutoApprovalSettingsError,
    audit_plan,
    auto_approval_revert,
    auto_approval_run,
    auto_approval_settings_set,
    version_cuts,
)
from annotation.services.queue import AUDIT_PRIORITY, queue_priorities_recompute
from annotation.services.reviews import review_claim, review_claim_next, review_submit, review_undo
from annotation.services.training.data import _training_data
from mlcore.autoapprove import OUT_OF_FOLD_SCORES_FILE, VALIDATION_SCORES_FILE, min_pairs
from tests.factories import (
    ModelVersionFactory,
    ProductTagFactory,
    TagFactory,
    products_create,
    suggestions_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_memory_broker", "empty_cache")]

# A low bar keeps the data small: at 0.90 / 90% a perfect record of 22 pairs clears the target.
TARGET, LEVEL = 0.9, 0.9


@pytest.fixture
def tags(db):
    return {name: TagFactory(name=name) for name in ("shoes", "red", "cotton")}


@pytest.fixture
def version(db, tags):
    v = ModelVersionFactory(is_active=True, config={"tag_ids": {n: t.id for n, t in tags.items()}})
    _validation_write(v, [({"shoes"}, [("shoes", 0.95), ("red", 0.03)])] * 100)
    return v


def _validation_write(version, rows, name=VALIDATION_SCORES_FILE) -> Path:
    folder = Path(django_settings.MODEL_DIR) / version.version
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    data = [
        {"id": str(i), "tags": sorted(gold), "scores": [[t, s, s >= 0.5] for t, s in scores]}
        for i, (gold, scores) in enumerate(rows)
    ]
    path.write_text(json.dumps(data))
    return path


def _catalog(version, tags, *, sure=60, unsure=5, low=5):
    """``sure`` products every decision of which clears the cuts, ``unsure`` with one unsure suggestion,
    ``low`` with nothing to approve."""
    groups = {}
    for prefix, count, scores in (
        ("sure", sure, {"shoes": 0.96, "red": 0.02}),
        ("unsure", unsure, {"shoes": 0.96, "red": 0.5}),
        ("low", low, {"shoes": 0.4, "red": 0.02}),
    ):
        groups[prefix] = products_create(count, prefix=prefix)
        for product in groups[prefix]:
            suggestions_create(product, version, {tags[n]: s for n, s in scores.items()})
    return groups


def _turn_on(**extra):
    return auto_approval_settings_set(
        enabled=True, target_precision=TARGET, confidence=LEVEL, min_tag_evidence=10_000, **extra
    )


def test_off_by_default_and_a_pass_then_does_nothing(version, tags):
    _catalog(version, tags)
    assert auto_approval_settings().enabled is False
    assert auto_approval_run().skipped == "off"
    assert not ProductTag.objects.exists()


def test_settings_are_validated_by_field(db):
    with pytest.raises(AutoApprovalSettingsError) as exc:
        auto_approval_settings_set(target_precision=1.5)
    assert exc.value.field == "target_precision"
    with pytest.raises(AutoApprovalSettingsError) as exc:
        auto_approval_settings_set(audit_min_products=2.5)
    assert exc.value.field == "audit_min_products"
    with pytest.raises(AutoApprovalSettingsError) as exc:
        auto_approval_settings_set(stop_rule="never")
    assert exc.value.field == "stop_rule"
    with pytest.raises(AutoApprovalSettingsError, match="unknown setting"):
        auto_approval_settings_set(colour="blue")
    assert auto_approval_settings().target_precision == 0.98  # nothing stored by a refused change


def test_cuts_come_from_the_held_out_slice_and_from_reviews(version, tags):
    cuts, evidence = version_cuts(version, AutoApprovalSettings(target_precision=TARGET, confidence=LEVEL))
    assert evidence["validation_products"] == 100 and evidence["validation_pairs"] == 200
    assert evidence["review_pairs"] == 0 and evidence["tags_with_own_cut"] == 0
    assert cuts.global_.approve.value == 0.95 and cuts.global_.reject.value == 0.03
    # Every held-out product would leave the queue with exactly its gold tags: the exit gate passes.
    assert evidence["exit"]["n"] == evidence["exit"]["k"] == 100 and evidence["exit"]["passes"]
    # Without any evidence nothing is approved.
    (Path(django_settings.MODEL_DIR) / version.version / VALIDATION_SCORES_FILE).unlink()
    cuts, evidence = version_cuts(version, auto_approval_settings())
    assert evidence["validation_pairs"] == 0 and cuts.global_.approve is None


def test_out_of_fold_scores_of_the_training_products_are_held_out_evidence_too(version, tags):
    """A slice of 10 products cannot clear the target; the version's training products scored out of fold
    (``out_of_fold_scores.json``) join it, and a wrong one among them counts like any other."""
    settings = AutoApprovalSettings(target_precision=TARGET, confidence=LEVEL)
    _validation_write(version, [({"shoes"}, [("shoes", 0.95), ("red", 0.03)])] * 10)
    cuts, evidence = version_cuts(version, settings)
    assert evidence["validation_products"] == 10 and evidence["out_of_fold_products"] == 0
    assert cuts.global_.approve is None
    rows = [({"shoes"}, [("shoes", 0.96), ("red", 0.02)])] * 60 + [
        ({"cotton"}, [("shoes", 0.97), ("red", 0.01)])
    ]
    _validation_write(version, rows, OUT_OF_FOLD_SCORES_FILE)
    cuts, evidence = version_cuts(version, settings)
    assert evidence["out_of_fold_products"] == 61 and evidence["out_of_fold_pairs"] == 122
    assert evidence["validation_pairs"] == 20
    # Highest first: the wrong pair at 0.97 sits among the first 22 pairs; 70 of 71 down to 0.95 pass.
    approve = cuts.global_.approve
    assert (approve.value, approve.n, approve.k) == (0.95, 71, 70)
    assert not auto_approval_run().pairs_approved  # off: evidence only


def test_reviews_are_evidence_and_incomplete_products_close_the_exit(version, tags, operator):
    """Held-out products whose gold has a tag the model never stored: pairs still clear the cut, but a
    product with every decision confident is not exactly right, so nothing leaves the queue."""
    _validation_write(version, [({"shoes", "cotton"}, [("shoes", 0.95), ("red", 0.03)])] * 100)
    groups = _catalog(version, tags, sure=30, unsure=0, low=0)
    _turn_on(audit_min_products=3)
    cuts, evidence = version_cuts(version, auto_approval_settings())
    assert cuts.global_.approve.value == 0.95
    assert evidence["exit"] == {"n": 100, "k": 0, "lower": 0.0, "passes": False}
    result = auto_approval_run()
    assert result.pairs_approved == 30 and result.products_out_of_queue == 0
    # Every one of them was decided with confidence; the exit gate alone kept them in the queue.
    assert result.products_confident == 30
    record = AutoApprovalVersion.objects.get(model_version=version)
    assert record.evidence["last_pass"]["products_confident"] == 30
    assert record.evidence["last_pass"]["pairs_approved"] == 30
    assert not Product.objects.filter(review_status=ReviewStatus.AUTO).exists()
    # The state says why they stay, in the gate's own figures.
    row = auto_approval_state()["versions"][0]
    assert (
        "of 100 evidence products the rule would let leave, 0 had exactly their tags"
        in (row["queue_exit_reason"])
    )
    assert row["no_approval_reason"] is None

    # Reviews of the version's cards are evidence: by default those of its audit draws only.
    product = next(p for p in groups["sure"] if not AutoApprovalAudit.objects.filter(product=p).exists())
    review_claim(product=product, user=operator)
    review_submit(product=product, user=operator, tags=["shoes"])
    audited = review_claim_next(user=operator)
    assert AutoApprovalAudit.objects.filter(product=audited).exists()
    review_submit(product=audited, user=operator, tags=["shoes"])
    _, evidence = version_cuts(version, auto_approval_settings())
    assert evidence["review_products"] == 1 and evidence["review_pairs"] == 2
    auto_approval_settings_set(review_evidence="all")
    _, evidence = version_cuts(version, auto_approval_settings())
    assert evidence["review_products"] == 2 and evidence["review_pairs"] == 4


def test_no_evidence_approves_nothing_through_the_pass(version, tags):
    (Path(django_settings.MODEL_DIR) / version.version / VALIDATION_SCORES_FILE).unlink()
    _catalog(version, tags)
    _turn_on()
    result = auto_approval_run()
    assert result.pairs_approved == 0 and result.audits_drawn == 0
    assert not ProductTag.objects.exists()
    assert not Product.objects.exclude(review_status=ReviewStatus.UNREVIEWED).exists()


def test_a_version_that_approves_nothing_says_why(version, tags, admin_api, client, admin_user):
    """An admin who turned auto-approval on and sees nothing happen reads why: the evidence at the cut that
    came closest (pairs, wrong ones, lower bound), or how much evidence a cut needs, in REST and on the
    models page."""
    _catalog(version, tags)
    # Every tenth held-out product carries another tag than the one the model is sure of.
    rows = [({"shoes"} if i % 10 else {"cotton"}, [("shoes", 0.95), ("red", 0.03)]) for i in range(200)]
    _validation_write(version, rows)
    _turn_on()
    assert auto_approval_run().pairs_approved == 0
    why = admin_api.get("/api/v1/auto-approval/").json()["versions"][0]["no_approval_reason"]
    assert why.startswith(f"{version.version} approves nothing: no score cut reaches 0.9.")
    assert "at score 0.950 and above, stands on 200 evidence pairs of which 20 are wrong" in why
    assert "(precision 0.900, lower bound 0.8" in why and "200 held-out products" in why
    client.force_login(admin_user)
    page = client.get(reverse("models")).content.decode()
    assert 'id="auto-approval-why"' in page and "of which 20 are wrong" in page

    # Too little evidence for any cut: how much a cut needs.
    _validation_write(version, rows[1:11])
    auto_approval_run()
    why = auto_approval_state()["versions"][0]["no_approval_reason"]
    assert f"holds 20 scored pairs, and a cut at 0.9 needs at least {min_pairs(TARGET, LEVEL)} pairs" in why

    # Once the evidence allows a cut and the version approves, the reason is gone.
    _validation_write(version, [({"shoes"}, [("shoes", 0.95), ("red", 0.03)])] * 100)
    assert auto_approval_run().pairs_approved
    assert auto_approval_state()["versions"][0]["no_approval_reason"] is None
    assert 'id="auto-approval-why"' not in client.get(reverse("models")).content.decode()


def test_pass_approves_above_the_cuts_and_draws_the_audit(version, tags):
    groups = _catalog(version, tags)
    _turn_on(audit_share=0.02, audit_min_products=5)
    result = auto_approval_run()
    assert (
        result.pairs_approved == 65 and result.products_approved == 65 and result.products_out_of_queue == 60
    )
    rows = ProductTag.objects.filter(source=TagSource.MODEL, model_version=version)
    assert rows.count() == 65 and set(rows.values_list("tag_id", flat=True)) == {tags["shoes"].id}
    assert not ProductTag.objects.filter(product__in=groups["low"]).exists()
    assert rows.filter(approved_by__isnull=True).count() == 65

    # The audit: 2% of 65 is 2, at least 5, and as many as hold min_pairs approved pairs (one each here).
    floor = min_pairs(TARGET, LEVEL)
    assert audit_plan(approved_products=65, settings=auto_approval_settings()) == 5
    audits = AutoApprovalAudit.objects.filter(model_version=version)
    assert result.audits_drawn == audits.count() == floor
    drawn = set(audits.values_list("product_id", flat=True))
    assert (
        Product.objects.filter(
            id__in=drawn, review_status=ReviewStatus.UNREVIEWED, priority=AUDIT_PRIORITY
        ).count()
        == floor
    )
    # Sure products not drawn left the queue; unsure ones stayed, their approved pair on the card.
    sure_ids = {p.id for p in groups["sure"]}
    assert Product.objects.filter(review_status=ReviewStatus.AUTO).count() == len(sure_ids - drawn)
    assert (
        set(Product.objects.filter(review_status=ReviewStatus.AUTO).values_list("id", flat=True))
        == sure_ids - drawn
    )
    for product in groups["unsure"]:
        product.refresh_from_db()
        assert product.review_status == ReviewStatus.UNREVIEWED
    record = AutoApprovalVersion.objects.get(model_version=version)
    assert record.approved_pairs == 65 and record.cuts["global"]["approve"]["value"] == 0.95

    # Running again approves nothing twice and draws no more.
    again = auto_approval_run()
    assert again.pairs_approved == 0 and again.audits_drawn == 0
    assert ProductTag.objects.filter(source=TagSource.MODEL).count() == 65


def test_audit_products_come_first_in_the_queue_even_after_a_re_ranking(version, tags, operator):
    _catalog(version, tags, sure=30, unsure=0, low=10)
    _turn_on(audit_min_products=3)
    auto_approval_run()
    drawn = set(AutoApprovalAudit.objects.values_list("product_id", flat=True))
    queue_priorities_recompute()
    assert set(Product.objects.filter(priority=AUDIT_PRIORITY).values_list("id", flat=True)) == drawn
    assert review_claim_next(user=operator).id in drawn


def test_a_review_wins_and_the_audit_counts_it(version, tags, operator):
    _catalog(version, tags, sure=30, unsure=0, low=0)
    _turn_on(audit_min_products=3)
    auto_approval_run()
    product = review_claim_next(user=operator)
    audit = AutoApprovalAudit.objects.get(product=product)
    event = review_submit(product=product, user=operator, tags=["shoes", "cotton"])
    audit.refresh_from_db()
    assert (audit.audited_pairs, audit.confirmed_pairs, audit.added_tags) == (1, 1, 1)
    row = ProductTag.objects.get(product=product, tag=tags["shoes"])
    assert row.source == TagSource.REVIEW and row.approved_by == operator and row.model_version == version

    # Undo withdraws the outcome and restores the model's row.
    review_undo(user=operator, event=event)
    audit.refresh_from_db()
    assert audit.reviewed_at is None and audit.confirmed_pairs is None
    assert ProductTag.objects.get(product=product, tag=tags["shoes"]).source == TagSource.MODEL

    # A reviewer who unchecks the model's tag: counted as wrong, the row is gone.
    product.refresh_from_db()
    review_submit(product=product, user=operator, tags=["cotton"])
    audit.refresh_from_db()
    assert (audit.audited_pairs, audit.confirmed_pairs) == (1, 0)
    assert not ProductTag.objects.filter(product=product, tag=tags["shoes"]).exists()
    figures = audit_figures(version.id, auto_approval_settings())
    assert figures.pairs == 1 and figures.confirmed == 0 and not figures.decided


def _review_audits(operator, *, wrong: int) -> int:
    """Review every waiting audit product, unchecking the model's tag on the first ``wrong`` of them."""
    reviewed = 0
    while (product := review_claim_next(user=operator)) is not None:
        if not AutoApprovalAudit.objects.filter(product=product, reviewed_at__isnull=True).exists():
            break
        review_submit(product=product, user=operator, tags=["cotton"] if reviewed < wrong else ["shoes"])
        reviewed += 1
    return reviewed


def test_stop_rule_stops_approvals_and_the_state_says_why(version, tags, operator, admin_api):
    _catalog(version, tags, sure=80, unsure=0, low=0)
    _turn_on(audit_min_products=5)
    auto_approval_run()
    drawn = AutoApprovalAudit.objects.count()
    assert _review_audits(operator, wrong=6) == drawn
    figures = audit_figures(version.id, auto_approval_settings())
    assert figures.pairs == drawn and figures.confirmed == drawn - 6
    assert figures.decided and figures.failing and figures.lower_bound < TARGET
    stop = Setting.objects.get(key=STOP_KEY).value
    assert stop["version"] == version.version and "below the target 0.9" in stop["reason"]

    # No new approvals while stopped.
    more = products_create(5, prefix="new")
    for product in more:
        suggestions_create(product, version, {tags["shoes"]: 0.99, tags["red"]: 0.01})
    assert auto_approval_run().skipped == "stopped"
    assert not ProductTag.objects.filter(product__in=more).exists()

    body = admin_api.get("/api/v1/auto-approval/").json()
    assert body["stopped"] is True and body["stop"]["version"] == version.version
    row = body["versions"][0]
    assert (
        row["audit"]["failing"]
        and row["audit"]["interval"][0] <= row["audit"]["precision"] <= row["audit"]["interval"][1]
    )

    # Turning it on again clears the stop, but the failing version stops it again on the next pass.
    assert (
        admin_api.put("/api/v1/auto-approval/", {"enabled": True}, format="json").json()["stopped"] is False
    )
    assert auto_approval_run().skipped == "stopped"
    # Reverted, the version no longer counts and approves nothing more.
    auto_approval_revert(version=version)
    auto_approval_settings_set(enabled=True)
    assert auto_approval_run().skipped == "version reverted"


def test_the_upper_bound_rule_stops_only_on_evidence_of_a_miss(version, tags, operator):
    _catalog(version, tags, sure=80, unsure=0, low=0)
    _turn_on(audit_min_products=5, stop_rule="upper_bound")
    auto_approval_run()
    _review_audits(operator, wrong=1)  # 21 of 22: lower bound 0.83 < 0.9, upper bound 0.995
    figures = audit_figures(version.id, auto_approval_settings())
    assert figures.decided and figures.lower_bound < TARGET and not figures.failing
    assert not Setting.objects.filter(key=STOP_KEY).exists()
    # The default rule fails the same audit.
    auto_approval_settings_set(stop_rule="lower_bound")
    assert audit_figures(version.id, auto_approval_settings()).failing


def test_a_passing_audit_keeps_it_running(version, tags, operator):
    _catalog(version, tags, sure=80, unsure=0, low=0)
    _turn_on(audit_min_products=5)
    auto_approval_run()
    _review_audits(operator, wrong=0)
    figures = audit_figures(version.id, auto_approval_settings())
    assert figures.decided and not figures.failing and figures.precision == 1.0
    assert not Setting.objects.filter(key=STOP_KEY).exists()


def test_revert_removes_unconfirmed_pairs_and_returns_products(version, tags, operator, admin_api):
    groups = _catalog(version, tags, sure=40, unsure=3, low=0)
    _turn_on(audit_min_products=3)
    auto_approval_run()
    confirmed = review_claim_next(user=operator)
    review_submit(product=confirmed, user=operator, tags=["shoes"])
    out_of_queue = Product.objects.filter(review_status=ReviewStatus.AUTO).count()
    waiting = AutoApprovalAudit.objects.filter(reviewed_at__isnull=True).count()
    assert out_of_queue > 0

    response = admin_api.post(f"/api/v1/models/{version.id}/revert-auto-approvals/")
    assert response.status_code == 200
    assert response.json() == {
        "version": version.version,
        "pairs_removed": 42,
        "products_returned": out_of_queue,
        "audits_cancelled": waiting,
    }
    assert not ProductTag.objects.filter(source=TagSource.MODEL).exists()
    assert ProductTag.objects.get(product=confirmed).source == TagSource.REVIEW  # a person confirmed it
    assert not Product.objects.filter(review_status=ReviewStatus.AUTO).exists()
    assert (
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).count() == len(groups["sure"]) + 3 - 1
    )
    assert AutoApprovalVersion.objects.get(model_version=version).reverted_at is not None
    assert auto_approval_run().skipped == "version reverted"


def test_model_approved_tags_are_not_training_data(version, tags):
    products = products_create(3, prefix="t")
    ProductTagFactory(product=products[0], tag=tags["shoes"])
    ProductTagFactory(product=products[1], tag=tags["red"])
    ProductTagFactory(product=products[2], tag=tags["cotton"], source=TagSource.MODEL, model_version=version)
    data = _training_data()
    assert sorted(r.id for r in data.records) == sorted(str(p.id) for p in products[:2])


def test_export_source_tells_model_from_review_in_both_engines(version, tags):
    products = products_create(2, prefix="e")
    ProductTagFactory(product=products[0], tag=tags["shoes"], stamp_product=True)
    ProductTagFactory(
        product=products[1],
        tag=tags["red"],
        source=TagSource.MODEL,
        model_version=version,
        stamp_product=True,
    )
    for file_format in ("jsonl", "csv"):
        outputs = []
        for engine in ("copy", "python"):
            export = exports.approved_tags_export(file_format=file_format, engine=engine)
            outputs.append(b"".join(export.chunks()).splitlines())
        end = -1 if file_format == "jsonl" else None
        assert outputs[0][:end] == outputs[1][:end]  # byte for byte
    jsonl = b"".join(exports.approved_tags_export(file_format="jsonl", engine="copy").chunks()).decode()
    sources = {
        r["external_id"]: [t["source"] for t in r["tags"]]
        for r in map(json.loads, jsonl.splitlines())
        if r.get("type") == "product"
    }
    assert sources == {"e-0000": ["review"], "e-0001": ["model"]}


def test_rest_settings_put_is_partial_and_checked(admin_api, operator_api, db):
    body = operator_api.get("/api/v1/auto-approval/").json()
    assert body["enabled"] is False and body["target_precision"] == 0.98 and body["versions"] == []
    response = admin_api.put(
        "/api/v1/auto-approval/", {"enabled": True, "target_precision": 0.98}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is True and body["confidence"] == 0.95 and body["audit_share"] == 0.02
    assert body["audit_min_products"] == 50 and body["pending"] is True
    bad = admin_api.put("/api/v1/auto-approval/", {"target_precision": 1.5}, format="json")
    assert bad.status_code == 400 and "target_precision" in bad.json()["fields"]
    unknown = admin_api.put("/api/v1/auto-approval/", {"colour": "blue"}, format="json")
    assert unknown.status_code == 400 and "colour" in unknown.json()["fields"]
    assert operator_api.put("/api/v1/auto-approval/", {"enabled": False}, format="json").status_code == 403
    typed = admin_api.put("/api/v1/auto-approval/", {"enabled": "0", "confidence": "0.9"}, format="json")
    assert typed.status_code == 400 and set(typed.json()["fields"]) == {"enabled", "confidence"}
    form = admin_api.put("/api/v1/auto-approval/", {"enabled": "false"})  # multipart: JSON only
    assert form.status_code == 415
    assert auto_approval_state()["enabled"] is True


def test_product_list_filters_products_approved_by_the_model(version, tags, operator, client):
    products = products_create(2, prefix="f")
    Product.objects.filter(id=products[0].id).update(review_status=ReviewStatus.AUTO)
    client.force_login(operator)
    page = client.get("/products/", {"status": "auto"}).content.decode()
    assert "f-0000" in page and "f-0001" not in page
