"""Tag-centric bulk review against the real PostgreSQL: candidates, precision bands, bulk decisions, undo,
claims, retraining counts, the background job, and the REST endpoints."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from django.utils import timezone

from annotation.models import (
    BulkAction,
    BulkKind,
    JobStatus,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    TagSource,
    TrainingJob,
)
from annotation.selectors.bulk import (
    CandidateFilter,
    CandidateFilterError,
    candidate_count,
    tag_candidates,
    tag_precision_bands,
)
from annotation.selectors.review import review_card
from annotation.services import bulk
from annotation.services.bulk import (
    BulkReviewError,
    bulk_action_run,
    bulk_action_undo,
    bulk_review_filter,
    bulk_review_products,
)
from annotation.services.reviews import NothingToUndo, review_claim, review_submit, review_undo
from tests.factories import (
    ModelVersionFactory,
    OperatorFactory,
    ProductTagFactory,
    TagFactory,
    products_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def other_operator(db):
    return OperatorFactory(username="otto", password="x")


@pytest.fixture
def world(db):
    """20 products; the active version suggests "navy" for each with scores 0.05, 0.10 ... 1.00 (product i
    scores (i + 1) / 20) and selects it from 0.5; a few other tags on the side."""
    version = ModelVersionFactory(is_active=True)
    colour = TagFactory(name="colour")
    navy = TagFactory(name="navy", parent=colour)
    red = TagFactory(name="red", parent=colour)
    products = products_create(20, prefix="NV")
    rows = []
    for i, product in enumerate(products):
        score = round((i + 1) / 20, 2)
        rows.append(
            Suggestion(product=product, tag=navy, model_version=version, score=score, selected=score >= 0.5)
        )
        rows.append(Suggestion(product=product, tag=red, model_version=version, score=0.3, selected=False))
    Suggestion.objects.bulk_create(rows)
    Product.objects.filter(pk__in=[p.pk for p in products]).update(suggested_by=version)
    return {"version": version, "navy": navy, "red": red, "colour": colour, "products": products}


def _all(tag, filters=None, order="-score", page_size=100):
    rows, cursor = [], ""
    while True:
        page = tag_candidates(
            tag=tag, filters=filters or CandidateFilter(), order=order, cursor=cursor, page_size=page_size
        )
        rows += page.rows
        if not page.next_cursor:
            return rows
        cursor = page.next_cursor


# --- Candidates -------------------------------------------------------------------------------------------


def test_candidates_page_by_score_with_keyset_cursor_both_ways(world):
    navy = world["navy"]
    down = _all(navy, page_size=7)
    assert [r.external_id for r in down] == [f"NV-{i:04d}" for i in range(19, -1, -1)]
    assert down[0].score == 1.0 and down[0].selected and not down[0].approved
    up = _all(navy, order="score", page_size=6)
    assert [r.external_id for r in up] == [f"NV-{i:04d}" for i in range(20)]
    # Ties on the score keep every product exactly once across pages (the product id breaks the tie).
    Suggestion.objects.filter(tag=navy).update(score=0.7)
    tied = _all(navy, page_size=3)
    assert sorted(r.external_id for r in tied) == sorted(p.external_id for p in world["products"])
    assert len(tied) == 20


def test_candidate_filters_score_text_category_status_disagreement(world, operator):
    navy, products = world["navy"], world["products"]
    Product.objects.filter(pk=products[19].pk).update(
        title="Navy blazer", category_path=["Clothing", "Jackets"]
    )
    Product.objects.filter(pk=products[18].pk).update(category_path=["Clothing", "Shirts"])
    ProductTagFactory(product=products[2], tag=navy)  # approved though the model does not select it

    def skus(**kwargs):
        return [r.external_id for r in _all(navy, CandidateFilter(**kwargs))]

    assert skus(min_score=0.9) == ["NV-0019", "NV-0018", "NV-0017"]
    assert skus(min_score=0.2, max_score=0.3) == ["NV-0005", "NV-0004", "NV-0003"]
    assert skus(text="blazer") == ["NV-0019"]
    assert skus(text="NV-0007") == ["NV-0007"]
    assert skus(category=("Clothing",)) == ["NV-0019", "NV-0018"]
    assert skus(category=("Clothing", "Shirts")) == ["NV-0018"]
    # Disagreement: selected (>= 0.5) but not approved, or approved but not selected.
    disagree = skus(disagreement=True)
    assert "NV-0002" in disagree and "NV-0019" in disagree and "NV-0005" not in disagree
    bulk_review_products(tag=navy, user=operator, accept=["NV-0019"])
    assert "NV-0019" not in skus(disagreement=True)
    assert skus(status="reviewed") == ["NV-0019"]
    assert "NV-0019" not in skus(status="unreviewed")
    assert len(skus(status="unreviewed")) == 19
    assert candidate_count(tag=navy, filters=CandidateFilter(min_score=0.5)) == 11


def test_candidate_filter_and_cursor_errors_name_the_field(world):
    with pytest.raises(CandidateFilterError) as exc:
        CandidateFilter(min_score=1.5)
    assert exc.value.field == "min_score"
    with pytest.raises(CandidateFilterError) as exc:
        CandidateFilter(status="maybe")
    assert exc.value.field == "status"
    page = tag_candidates(tag=world["navy"], filters=CandidateFilter(), page_size=5)
    with pytest.raises(CandidateFilterError) as exc:
        tag_candidates(tag=world["navy"], filters=CandidateFilter(), order="score", cursor=page.next_cursor)
    assert exc.value.field == "cursor"
    for forged in (["-score", 0.5, 2**70], ["-score", "nan", 5], ["-score", 0.5, True], {"a": 1}):
        raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        with pytest.raises(CandidateFilterError):
            tag_candidates(tag=world["navy"], filters=CandidateFilter(), cursor=raw)


def test_precision_bands_count_products_reviewed_for_the_tag(world, operator):
    navy, products = world["navy"], world["products"]
    # Band 0.9-1.0 holds NV-0017 (0.90), NV-0018 (0.95), NV-0019 (1.00): accept two, reject one.
    bulk_review_products(tag=navy, user=operator, accept=["NV-0019", "NV-0018"], reject=["NV-0017"])
    # A card-reviewed product without navy counts as a rejection in its band (0.15 -> band 0.1).
    Product.objects.filter(pk=products[2].pk).update(review_status=ReviewStatus.REVIEWED)
    bands = {band.low: band for band in tag_precision_bands(tag=navy)}
    top = bands[0.9]
    assert (top.candidates, top.reviewed, top.accepted) == (3, 3, 2)
    assert top.precision == pytest.approx(2 / 3)
    assert (bands[0.1].candidates, bands[0.1].reviewed, bands[0.1].accepted) == (2, 1, 0)
    assert bands[0.5].reviewed == 0 and bands[0.5].precision is None
    assert sum(band.candidates for band in bands.values()) == 20


# --- Bulk decisions ---------------------------------------------------------------------------------------


def test_bulk_accept_writes_one_audited_event_per_product_and_keeps_review_status(world, operator):
    navy, colour, version = world["navy"], world["colour"], world["version"]
    outcome = bulk_review_products(tag=navy, user=operator, accept=["NV-0019", "NV-0018", "NOPE"])
    assert outcome.done == ["NV-0018", "NV-0019"]
    assert outcome.skipped == [("NOPE", "no product has this external id")]
    action = outcome.action
    assert (action.status, action.done, action.skipped, action.kind) == (
        JobStatus.SUCCEEDED,
        2,
        1,
        BulkKind.DECIDE,
    )
    events = ReviewEvent.objects.filter(bulk_action=action).order_by("product_id")
    assert events.count() == 2
    event = events.last()
    assert event.action == ReviewAction.BULK and event.user == operator and event.tag == navy
    assert event.model_version == version
    assert event.shown == [
        {
            "tag": "navy",
            "tag_id": navy.pk,
            "score": 1.0,
            "selected": True,
            "model_version": version.version,
            "visible": True,
        }
    ]
    assert event.accepted == ["navy"] and event.rejected == [] and event.previous_tags == []
    assert event.added == ["colour", "navy"] and event.final_tags == ["colour", "navy"]
    rows = {row.tag_id: row for row in ProductTag.objects.filter(product__external_id="NV-0019")}
    assert rows[navy.pk].source == TagSource.BULK and rows[navy.pk].approved_by == operator
    assert rows[navy.pk].model_version == version
    assert rows[colour.pk].source == TagSource.HIERARCHY  # closure: the ancestor comes along
    product = Product.objects.get(external_id="NV-0019")
    assert product.review_status == ReviewStatus.UNREVIEWED  # one tag decided, the others not looked at
    assert product.tags_updated_at is not None
    # The card of the still-unreviewed product starts with navy approved (source bulk).
    chips = {chip.name: chip for chip in review_card(product=product).chips}
    assert chips["navy"].approved_source == TagSource.BULK


def test_bulk_reject_removes_the_tag_and_decides_it_once(world, operator, other_operator):
    navy = world["navy"]
    ProductTagFactory(product=world["products"][19], tag=navy, source=TagSource.IMPORT)
    first = bulk_review_products(tag=navy, user=operator, reject=["NV-0019", "NV-0018"])
    assert first.done == ["NV-0018", "NV-0019"]
    assert not ProductTag.objects.filter(product__external_id="NV-0019", tag=navy).exists()
    event = ReviewEvent.objects.get(bulk_action=first.action, product__external_id="NV-0019")
    assert event.rejected == ["navy"] and event.removed == ["navy"]
    assert event.previous_tags[0]["source"] == TagSource.IMPORT
    # The card of the still-unreviewed product starts navy unchecked, though the model selects it.
    chips = {
        chip.name: chip for chip in review_card(product=Product.objects.get(external_id="NV-0019")).chips
    }
    assert chips["navy"].selected and not chips["navy"].checked and chips["navy"].approved_source is None
    # The same decision again is no decision: skipped, no second event.
    again = bulk_review_products(tag=navy, user=other_operator, reject=["NV-0019"])
    assert again.done == []
    assert again.skipped == [("NV-0019", f"already rejected (bulk action {first.action.pk})")]
    # Changing one's mind is a new decision.
    flip = bulk_review_products(tag=navy, user=other_operator, accept=["NV-0019"])
    assert flip.done == ["NV-0019"]


def test_reviewed_products_stay_reviewed_and_already_approved_is_skipped(world, operator):
    navy, products = world["navy"], world["products"]
    ProductTagFactory(product=products[10], tag=navy)
    Product.objects.filter(pk__in=[products[10].pk, products[11].pk]).update(
        review_status=ReviewStatus.REVIEWED
    )
    outcome = bulk_review_products(tag=navy, user=operator, accept=["NV-0010", "NV-0011"])
    assert outcome.done == ["NV-0011"]
    assert outcome.skipped == [("NV-0010", "already accepted (reviewed)")]
    assert Product.objects.get(pk=products[11].pk).review_status == ReviewStatus.REVIEWED


def test_products_held_by_another_operator_are_skipped_with_the_holder(world, operator, other_operator):
    navy, products = world["navy"], world["products"]
    review_claim(product=products[19], user=other_operator)
    review_claim(product=products[18], user=operator)  # one's own claim does not stop one's bulk action
    outcome = bulk_review_products(tag=navy, user=operator, accept=["NV-0019", "NV-0018"])
    assert outcome.done == ["NV-0018"]
    ((sku, reason),) = outcome.skipped
    assert sku == "NV-0019" and reason.startswith("being reviewed by otto (claim until ")
    assert outcome.action.skipped_items == [{"external_id": "NV-0019", "reason": reason}]
    # An expired claim holds nothing.
    Product.objects.filter(pk=products[19].pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert bulk_review_products(tag=navy, user=operator, accept=["NV-0019"]).done == ["NV-0019"]


def test_bulk_request_errors_name_the_field(world, operator):
    navy = world["navy"]
    with pytest.raises(BulkReviewError) as exc:
        bulk_review_products(tag=navy, user=operator, accept=["NV-0001"], reject=["NV-0001"])
    assert exc.value.field == "reject" and "NV-0001" in str(exc.value)
    with pytest.raises(BulkReviewError) as exc:
        bulk_review_products(tag=navy, user=operator)
    assert exc.value.field == "accept"
    merged = TagFactory(name="old navy", merged_into=navy, is_active=False)
    with pytest.raises(BulkReviewError) as exc:
        bulk_review_products(tag=merged, user=operator, accept=["NV-0001"])
    assert exc.value.field == "tag"


def test_accept_by_filter_takes_every_candidate_above_the_score_on_the_filter(world, operator):
    navy = world["navy"]
    bulk_review_products(tag=navy, user=operator, reject=["NV-0016"])  # 0.85: decided already
    filters = CandidateFilter(min_score=0.8, status="unreviewed")
    assert candidate_count(tag=navy, filters=filters) == 4
    outcome = bulk_review_filter(tag=navy, user=operator, filters=filters)
    assert sorted(outcome.done) == ["NV-0015", "NV-0017", "NV-0018", "NV-0019"]
    assert outcome.action.total == 4 and outcome.action.selection["filter"]["min_score"] == 0.8
    assert not ProductTag.objects.filter(product__external_id="NV-0016", tag=navy).exists()
    assert candidate_count(tag=navy, filters=filters) == 0


def test_undo_reverts_the_whole_action_as_one_and_restores_rejected_rows(world, operator):
    navy, colour, products = world["navy"], world["colour"], world["products"]
    ProductTagFactory(product=products[5], tag=navy, source=TagSource.IMPORT)
    ProductTagFactory(product=products[18], tag=colour, source=TagSource.REVIEW)  # kept by the undo
    accepted = bulk_review_products(tag=navy, user=operator, accept=["NV-0019", "NV-0018"])
    rejected = bulk_review_products(tag=navy, user=operator, reject=["NV-0005"])

    undo = bulk_action_undo(action=accepted.action, user=operator)
    assert sorted(undo.done) == ["NV-0018", "NV-0019"] and undo.skipped == []
    assert undo.action.kind == BulkKind.UNDO and undo.action.undoes == accepted.action
    assert not ProductTag.objects.filter(product__external_id="NV-0019").exists()
    assert list(ProductTag.objects.filter(product=products[18]).values_list("tag__name", flat=True)) == [
        "colour"
    ]
    assert (
        ReviewEvent.objects.filter(action=ReviewAction.UNDO, reverts__bulk_action=accepted.action).count()
        == 2
    )
    # The undone products are unreviewed for the tag again.
    assert "NV-0019" in [r.external_id for r in _all(navy, CandidateFilter(status="unreviewed"))]

    bulk_action_undo(action=rejected.action, user=operator)
    row = ProductTag.objects.get(product=products[5], tag=navy)
    assert row.source == TagSource.IMPORT  # the removed row comes back as it was

    with pytest.raises(BulkReviewError, match="already undone"):
        bulk_action_undo(action=accepted.action, user=operator)
    with pytest.raises(BulkReviewError, match="cannot be undone"):
        bulk_action_undo(action=undo.action, user=operator)


def test_undo_skips_products_decided_again_since_and_others_may_not_undo(world, operator, other_operator):
    navy, products = world["navy"], world["products"]
    first = bulk_review_products(tag=navy, user=operator, accept=["NV-0019", "NV-0018"])
    # NV-0019 is reviewed on its card afterwards: undoing the bulk must not override that review.
    review_claim(product=products[19], user=other_operator)
    review_submit(product=products[19], user=other_operator, tags=["navy", "red"])
    with pytest.raises(BulkReviewError, match="Only the operator who made"):
        bulk_action_undo(action=first.action, user=other_operator)
    undo = bulk_action_undo(action=first.action, user=operator)
    assert undo.done == ["NV-0018"]
    assert undo.skipped == [
        ("NV-0019", "decided again since (a review or another bulk decision on this tag)")
    ]
    assert set(ProductTag.objects.filter(product=products[19]).values_list("tag__name", flat=True)) == {
        "navy",
        "red",
        "colour",
    }


def test_card_undo_does_not_revert_a_later_bulk_decision(world, operator):
    navy, product = world["navy"], world["products"][3]
    review_claim(product=product, user=operator)
    submit = review_submit(product=product, user=operator, tags=["red"])
    bulk_review_products(tag=navy, user=operator, accept=[product.external_id])
    with pytest.raises(NothingToUndo, match="reviewed again since"):
        review_undo(user=operator, event=submit)


def test_bulk_decisions_count_toward_automatic_retraining(
    world, operator, settings, in_memory_broker, django_capture_on_commit_callbacks
):
    settings.RETRAIN_AFTER_REVIEWS = 5
    with django_capture_on_commit_callbacks(execute=True):
        bulk_review_products(tag=world["navy"], user=operator, accept=["NV-0019", "NV-0018", "NV-0017"])
    assert not TrainingJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        bulk_review_products(tag=world["navy"], user=operator, reject=["NV-0001", "NV-0002"])
    job = TrainingJob.objects.get()
    assert job.trigger == "auto" and job.reviews_at_request == 5


def test_a_large_selection_runs_as_a_job_with_progress(world, operator, settings, in_memory_broker):
    settings.BULK_REVIEW_INLINE_MAX = 5
    filters = CandidateFilter(min_score=0.5)
    outcome = bulk_review_filter(tag=world["navy"], user=operator, filters=filters)
    assert outcome.queued and outcome.done == []
    action = outcome.action
    assert (action.status, action.total, action.done) == (JobStatus.QUEUED, 11, 0)
    assert not ReviewEvent.objects.filter(bulk_action=action).exists()
    bulk.CHUNK, saved = 4, bulk.CHUNK  # several chunks: progress is written chunk by chunk
    try:
        finished = bulk_action_run(action.pk)
    finally:
        bulk.CHUNK = saved
    assert (finished.status, finished.done, finished.skipped) == (JobStatus.SUCCEEDED, 11, 0)
    assert ReviewEvent.objects.filter(bulk_action=action).count() == 11
    assert bulk_action_run(action.pk).done == 11  # a duplicate delivery does nothing
    assert ReviewEvent.objects.filter(bulk_action=action).count() == 11
    undo = bulk_action_undo(action=finished, user=operator)
    assert undo.queued  # 11 > 5: the undo is a job too
    assert bulk_action_run(undo.action.pk).done == 11
    assert not ProductTag.objects.filter(tag=world["navy"]).exists()


def test_the_job_records_a_failure(world, operator, settings, in_memory_broker, monkeypatch):
    settings.BULK_REVIEW_INLINE_MAX = 1
    outcome = bulk_review_products(tag=world["navy"], user=operator, accept=["NV-0019", "NV-0018"])

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bulk, "_decide_chunk", broken)
    failed = bulk_action_run(outcome.action.pk)
    assert failed.status == JobStatus.FAILED and "disk on fire" in failed.error


def test_tag_merge_moves_bulk_decisions_to_the_target(world, operator):
    from annotation.services.tags import tag_merge

    navy = world["navy"]
    dark = TagFactory(name="dark blue", parent=world["colour"])
    Suggestion.objects.create(
        product=world["products"][0], tag=dark, model_version=world["version"], score=0.4
    )
    bulk_review_products(tag=dark, user=operator, accept=["NV-0000"])
    tag_merge(source=dark, target=navy)
    assert [r.external_id for r in _all(navy, CandidateFilter(status="reviewed"))] == ["NV-0000"]


# --- REST --------------------------------------------------------------------------------------------------


def test_rest_candidates_pages_and_filters(world, operator_api):
    navy = world["navy"]
    url = f"/api/v1/tags/{navy.pk}/candidates/"
    response = operator_api.get(url, {"min_score": "0.5", "order": "score"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tag"] == {"id": navy.pk, "name": "navy"}
    assert body["model_version"] == world["version"].version
    assert [r["external_id"] for r in body["results"]][:2] == ["NV-0009", "NV-0010"]
    assert body["next"] is None and len(body["results"]) == 11
    first = body["results"][0]
    assert set(first) == {
        "external_id",
        "title",
        "brand",
        "image_url",
        "score",
        "selected",
        "approved",
        "decided",
        "review_status",
        "approved_tags",
        "claimed_by",
    }
    bad = operator_api.get(url, {"min_score": "2"})
    assert bad.status_code == 400 and "min_score" in bad.json()["fields"]
    bad = operator_api.get(url, {"cursor": "garbage"})
    assert bad.status_code == 400 and "cursor" in bad.json()["fields"]
    bad = operator_api.get(url, {"status": "maybe"})
    assert bad.status_code == 400 and "status" in bad.json()["fields"]
    assert operator_api.get("/api/v1/tags/999999/candidates/").status_code == 404


def test_rest_candidates_follow_next_links_through_every_page(world, operator_api, settings):
    navy = world["navy"]
    Suggestion.objects.bulk_create(
        Suggestion(product=p, tag=navy, model_version=world["version"], score=0.01)
        for p in products_create(150, prefix="EXTRA")
    )
    url, seen = f"/api/v1/tags/{navy.pk}/candidates/", []
    while url:
        body = operator_api.get(url).json()
        seen += [r["external_id"] for r in body["results"]]
        url = body["next"]
    assert len(seen) == 170 == len(set(seen))


def test_rest_bulk_review_lists_filter_job_and_undo(
    world, operator_api, operator, settings, in_memory_broker
):
    navy = world["navy"]
    url = f"/api/v1/tags/{navy.pk}/bulk-review/"
    Product.objects.filter(external_id="NV-0017").update(
        claimed_by=OperatorFactory(username="bob", password="x"),
        claim_expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    response = operator_api.post(
        url, {"accept": ["NV-0019", "NV-0017"], "reject": ["NV-0001"]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["job"] is None and body["action"]["status"] == "succeeded"
    outcomes = {r["external_id"]: r for r in body["results"]}
    assert outcomes["NV-0019"]["outcome"] == "done" and outcomes["NV-0001"]["outcome"] == "done"
    assert outcomes["NV-0017"]["outcome"] == "skipped" and "bob" in outcomes["NV-0017"]["reason"]

    response = operator_api.post(
        url, {"accept_filter": {"min_score": 0.9, "status": "unreviewed"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert [r["external_id"] for r in response.json()["results"] if r["outcome"] == "done"] == ["NV-0018"]

    settings.BULK_REVIEW_INLINE_MAX = 3
    response = operator_api.post(url, {"accept_filter": {"min_score": 0.5}}, format="json")
    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert job == response.json()["action"]["id"] and response.json()["action"]["status"] == "queued"
    bulk_action_run(job)
    progress = operator_api.get(f"/api/v1/bulk-actions/{job}/").json()
    assert progress["status"] == "succeeded" and progress["done"] + progress["skipped"] == progress["total"]

    first = body["action"]["id"]
    settings.BULK_REVIEW_INLINE_MAX = 5000
    undo = operator_api.post(f"/api/v1/bulk-actions/{first}/undo/")
    assert undo.status_code == 200, undo.content
    assert undo.json()["action"]["kind"] == "undo"
    assert operator_api.get(f"/api/v1/bulk-actions/{first}/").json()["undone"] is True
    again = operator_api.post(f"/api/v1/bulk-actions/{first}/undo/")
    assert again.status_code == 400 and "already undone" in again.json()["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "non_field_errors"),
        ({"accept": ["A"], "accept_filter": {}}, "non_field_errors"),
        ({"accept": ["NV-0001"], "reject": ["NV-0001"]}, "reject"),
        ({"accept_filter": {"min_score": "high"}}, "accept_filter"),
        ({"accept_filter": {"min_score": 0.9, "max_score": 0.1}}, "accept_filter"),
        ({"accept": []}, "accept"),
        ({"accept": "NV-0001"}, "accept"),
    ],
)
def test_rest_bulk_review_bad_bodies_are_400_naming_the_field(world, operator_api, body, field):
    response = operator_api.post(f"/api/v1/tags/{world['navy'].pk}/bulk-review/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    assert not ReviewEvent.objects.exists()


# --- HTML --------------------------------------------------------------------------------------------------


def test_grid_page_decide_count_and_undo(world, operator, client):
    navy = world["navy"]
    client.force_login(operator)
    page = client.get(f"/tags/{navy.pk}/candidates/", {"min_score": "0.8"})
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-sku="NV-') == 5 and "Precision by score band" in html
    assert html.index('data-sku="NV-0019"') < html.index('data-sku="NV-0015"')
    bands = client.get(f"/tags/{navy.pk}/candidates/bands/").content.decode()
    assert bands.count("<tr data-band=") == 10
    count = client.get(f"/tags/{navy.pk}/candidates/count/", {"min_score": "0.9", "status": "unreviewed"})
    assert count.json() == {"count": 3}
    assert client.get(f"/tags/{navy.pk}/candidates/count/", {"min_score": "7"}).status_code == 400

    response = client.post(
        f"/tags/{navy.pk}/candidates/decide/",
        {"decision": "accept", "products": "NV-0019\nNV-0018", "filter_query": "min_score=0.8"},
    )
    assert response.status_code == 302 and response["Location"].endswith("?min_score=0.8")
    action = BulkAction.objects.get()
    assert action.done == 2
    response = client.post(
        f"/tags/{navy.pk}/candidates/decide/",
        {"decision": "reject", "by_filter": "on", "min_score": "0.9", "status": "unreviewed"},
    )
    assert response.status_code == 302
    assert ReviewEvent.objects.filter(action=ReviewAction.BULK, rejected=["navy"]).count() == 1  # NV-0017
    followed = client.get(response["Location"])
    assert "Rejected navy: 1 product done" in followed.content.decode()
    assert client.post(f"/bulk-actions/{action.pk}/undo/").status_code == 302
    assert BulkAction.objects.filter(undoes=action).exists()
    assert client.get(f"/bulk-actions/{action.pk}/").status_code == 200
    assert client.get("/candidates/", {"tag": "Navy"})["Location"] == f"/tags/{navy.pk}/candidates/"


def test_event_rows_name_every_review_event_column():
    """Bulk events are written by COPY from bulk._event_row: a new ReviewEvent column must be added there."""
    columns = {field.column for field in ReviewEvent._meta.concrete_fields} - {"id"}
    assert set(bulk._event_row()) == columns


def test_rest_bulk_review_takes_json_only(world, operator_api):
    response = operator_api.post(
        f"/api/v1/tags/{world['navy'].pk}/bulk-review/",
        {"reject": "{}", "accept_filter": "{}"},
        format="multipart",
    )
    assert response.status_code == 415
    assert not BulkAction.objects.exists()


def test_the_tag_page_links_to_the_candidate_grid(world, admin_user, client):
    client.force_login(admin_user)
    page = client.get(f"/tags/{world['navy'].pk}/").content.decode()
    assert f'href="/tags/{world["navy"].pk}/candidates/"' in page
