"""The batched suggestion refresh with a real trained model (in-process; the worker tests cover Celery)."""

from __future__ import annotations

import pytest

from annotation.models import (
    JobStatus,
    ModelVersion,
    Product,
    ReviewStatus,
    Suggestion,
    SuggestionRefresh,
    Tag,
    TrainingTrigger,
)
from annotation.services.queue import queue_priorities_recompute
from annotation.services.suggestions import (
    suggestion_refresh_latest,
    suggestions_refresh_batch,
    suggestions_refresh_request,
)
from annotation.services.training import model_version_activate, model_version_train, training_job_request
from tests.annotation.training_support import catalog_load, demo_rows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_broker", "fast_tagger"),
]


def _current_suggestions(product: Product) -> list[Suggestion]:
    """The product's suggestions from the active version, best first; empty while its current suggestions
    (``Product.suggested_by``) are another version's."""
    active = ModelVersion.objects.filter(is_active=True).first()
    if active is None or product.suggested_by_id != active.id:
        return []
    return list(
        Suggestion.objects.filter(product=product, model_version=active)
        .select_related("tag")
        .order_by("-score", "tag_id")
    )


def _trained_version() -> ModelVersion:
    job = training_job_request(trigger=TrainingTrigger.MANUAL, enqueue=False)
    finished = model_version_train(job.id)
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    return finished.model_version


def _run_refresh(version: ModelVersion, size: int) -> list[int]:
    """Run batches the way the task chain does (each takes the next flagged products after the last)."""
    counts = []
    after = 0
    while Product.objects.filter(needs_suggestion=True, id__gt=after).exists():
        batch_ids = list(
            Product.objects.filter(needs_suggestion=True, id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:size]
        )
        counts.append(suggestions_refresh_batch(model_version_id=version.id, size=size, after_id=after))
        after = batch_ids[-1]
    return counts


def test_activation_refreshes_every_unreviewed_product_in_batches():
    catalog_load(demo_rows(tagged=200, untagged=45), reviewed_tagged=True)
    # Imported reviewed products are flagged too (the dashboard checks their labels against suggestions).
    flagged = Product.objects.filter(needs_suggestion=True).count()
    assert flagged == 245
    version = _trained_version()
    assert version.is_active
    refresh = suggestion_refresh_latest()
    assert refresh.model_version == version and refresh.total == flagged and refresh.done == 0
    counts = _run_refresh(version, size=50)
    assert counts == [50, 50, 50, 50, 45]  # never one task over the catalog
    refresh.refresh_from_db()
    assert refresh.status == JobStatus.SUCCEEDED and refresh.done == refresh.total == flagged
    unreviewed = Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
    assert not unreviewed.filter(needs_suggestion=True).exists()
    assert unreviewed.filter(suggested_by=version).count() == 45
    for product in unreviewed[:5]:
        shown = _current_suggestions(product)
        assert shown and len(shown) <= 20
        assert {s.model_version_id for s in shown} == {version.id}
        assert [s.score for s in shown] == sorted((s.score for s in shown), reverse=True)
        assert all(0.0 <= s.score <= 1.0 for s in shown)
    # Suggested tags are the version's canonical tags.
    assert set(Suggestion.objects.values_list("tag_id", flat=True)) <= set(version.config["tag_ids"].values())
    # The queue is then ranked from these stored scores.
    summary = queue_priorities_recompute()
    assert summary["ranked"] == 45 and summary["version"] == version.version
    assert unreviewed.filter(priority__gt=0).count() == 45


def test_a_batch_delivered_twice_writes_nothing_twice():
    catalog_load(demo_rows(tagged=150, untagged=20), reviewed_tagged=True)
    version = _trained_version()
    first = suggestions_refresh_batch(model_version_id=version.id, size=500)
    rows = Suggestion.objects.count()
    assert first == 170 and rows > 0  # every flagged product (150 reviewed + 20 unreviewed)
    assert suggestions_refresh_batch(model_version_id=version.id, size=500) == 0  # nothing flagged any more
    Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).update(needs_suggestion=True)
    assert suggestions_refresh_batch(model_version_id=version.id, size=500) == 20  # flags cleared again
    assert Suggestion.objects.count() == rows  # no duplicate (product, version, tag)


def test_products_imported_later_get_the_active_versions_suggestions():
    catalog_load(demo_rows(tagged=150, untagged=5), reviewed_tagged=True)
    version = _trained_version()
    _run_refresh(version, size=100)
    newcomer = catalog_load([{"id": "late-1", "title": "Aloe Vera Face Wash, 100 ml", "lang": "en"}])[0]
    refresh = suggestions_refresh_request()  # what the import calls after flagging its products
    assert refresh is not None and refresh.model_version == version
    assert refresh.total == 1 and refresh.status == JobStatus.QUEUED
    _run_refresh(version, size=100)
    newcomer.refresh_from_db()
    assert newcomer.suggested_by == version and not newcomer.needs_suggestion
    assert _current_suggestions(newcomer)


def test_a_superseded_version_stops_and_its_suggestions_are_never_current(admin_user):
    catalog_load(demo_rows(tagged=150, untagged=12), reviewed_tagged=True)
    old = _trained_version()
    _run_refresh(old, size=100)
    old_rows = Suggestion.objects.filter(model_version=old).count()
    new = _trained_version()
    if not new.is_active:  # promotion kept the old one: activate the new one by hand for this test
        model_version_activate(version=new, user=admin_user)
    # A batch of the old version arriving late does nothing and closes the old refresh.
    Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).update(needs_suggestion=True)
    assert suggestions_refresh_batch(model_version_id=old.id, size=100) == 0
    assert not SuggestionRefresh.objects.filter(model_version=old, status__in=["queued", "running"]).exists()
    product = Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).first()
    assert _current_suggestions(product) == []  # still the old version's suggestions: not shown
    _run_refresh(new, size=100)
    product.refresh_from_db()
    assert {s.model_version_id for s in _current_suggestions(product)} == {new.id}
    # The old version's rows stay for the audit trail.
    assert Suggestion.objects.filter(model_version=old).count() == old_rows
    # Rolling back recomputes with the old version, reusing its rows (no duplicates).
    model_version_activate(version=old, user=admin_user)
    _run_refresh(old, size=100)
    assert Suggestion.objects.filter(model_version=old).count() == old_rows
    product.refresh_from_db()
    assert {s.model_version_id for s in _current_suggestions(product)} == {old.id}


def test_deactivated_tags_are_not_suggested():
    catalog_load(demo_rows(tagged=150, untagged=10), reviewed_tagged=True)
    version = _trained_version()
    retired = Tag.objects.get(normalized_name="beauty & hygiene")  # the demo's most common tag
    Tag.objects.filter(id=retired.id).update(is_active=False)
    _run_refresh(version, size=100)
    assert not Suggestion.objects.filter(model_version=version, tag=retired).exists()
    assert Suggestion.objects.filter(model_version=version).exists()


def test_without_an_active_version_a_request_only_reorders_the_queue():
    catalog_load(demo_rows(tagged=0, untagged=5))
    assert suggestions_refresh_request() is None
    assert not SuggestionRefresh.objects.exists()


def test_hierarchy_closure_from_the_taxonomy_applies_to_suggestions():
    """A parent set in the taxonomy after training is selected wherever its child is (closure on)."""
    catalog_load(demo_rows(tagged=150, untagged=20), reviewed_tagged=True)
    version = _trained_version()
    child = Tag.objects.get(normalized_name="skin care")
    # Absurd on purpose: the model never pairs them.
    parent = Tag.objects.get(normalized_name="kitchen, garden & pets")
    Tag.objects.filter(id=child.id).update(parent=parent)
    _run_refresh(version, size=100)
    with_child = set(
        Suggestion.objects.filter(model_version=version, tag=child, selected=True).values_list(
            "product_id", flat=True
        )
    )
    assert with_child
    with_parent = set(
        Suggestion.objects.filter(
            model_version=version, tag=parent, selected=True, product_id__in=with_child
        ).values_list("product_id", flat=True)
    )
    assert with_parent == with_child
