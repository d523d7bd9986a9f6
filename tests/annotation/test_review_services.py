"""Review services against the real PostgreSQL: claims, skip, submit, audit, hierarchy, undo."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from annotation.models import (
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Tag,
    TagSource,
    TrainingJob,
    TrainingTrigger,
)
from annotation.selectors.review import review_card, review_stats
from annotation.services import reviews
from annotation.services.reviews import (
    ClaimConflict,
    NothingToUndo,
    UnknownTags,
    claims_release_expired,
    review_claim,
    review_claim_next,
    review_release,
    review_skip,
    review_submit,
    review_undo,
)
from tests.factories import (
    ModelVersionFactory,
    OperatorFactory,
    TagFactory,
    products_create,
    suggestions_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def other_operator(db):
    return OperatorFactory(username="otto", password="x")


def _expire_claim(product: Product) -> None:
    Product.objects.filter(pk=product.pk).update(claim_expires_at=timezone.now() - dt.timedelta(seconds=1))


# --- Claims -----------------------------------------------------------------------------------------------


def test_claim_next_follows_priority_then_id_and_never_hands_out_a_held_product(operator, other_operator):
    low = products_create(2, prefix="LOW", priority=0.0)
    high = products_create(2, prefix="HIGH", priority=5.0)

    first = review_claim_next(user=operator)
    second = review_claim_next(user=other_operator)

    assert first.pk == high[0].pk
    assert second.pk == high[1].pk
    assert first.claimed_by_id == operator.pk
    assert first.claim_expires_at > timezone.now() + dt.timedelta(seconds=500)  # default TTL 600 s
    # Asking again returns the claim already held (a reload must not take a second product).
    assert review_claim_next(user=operator).pk == first.pk
    assert Product.objects.filter(claimed_by=operator).count() == 1
    assert low[0].pk not in {first.pk, second.pk}


def test_expired_claim_returns_to_the_queue_and_the_sweep_clears_it(operator, other_operator):
    (product,) = products_create(1)
    assert review_claim_next(user=operator).pk == product.pk
    assert review_claim_next(user=other_operator) is None  # held: nothing else in the queue

    _expire_claim(product)
    assert review_claim_next(user=other_operator).pk == product.pk

    _expire_claim(product)
    assert claims_release_expired() == 1
    product.refresh_from_db()
    assert product.claimed_by_id is None and product.claim_expires_at is None


def test_claims_release_expired_task_runs_the_service(operator):
    from annotation.tasks import claims_release_expired as task

    (product,) = products_create(1)
    review_claim_next(user=operator)
    _expire_claim(product)
    task.apply()  # the task body in-process (a worker would run the same function)
    product.refresh_from_db()
    assert product.claimed_by_id is None


def test_skip_releases_records_and_hides_the_product_from_this_operator_only(operator, other_operator):
    first, second = products_create(2)
    assert review_claim_next(user=operator).pk == first.pk

    event = review_skip(product=first, user=operator)

    first.refresh_from_db()
    assert first.claimed_by_id is None
    assert event.action == ReviewAction.SKIP
    assert review_claim_next(user=operator).pk == second.pk  # not the skipped one again
    assert review_claim_next(user=other_operator).pk == first.pk  # others still get it


def test_release_frees_own_claim_and_refuses_someone_elses(operator, other_operator, admin_user):
    (product,) = products_create(1)
    review_claim_next(user=operator)

    with pytest.raises(ClaimConflict):
        review_release(product=product, user=other_operator)
    assert review_release(product=product, user=operator) is True
    assert review_release(product=product, user=operator) is False

    review_claim(product=product, user=operator)
    assert review_release(product=product, user=admin_user) is True  # admins may free a stuck claim


def test_claiming_a_given_product_releases_the_previous_claim(operator, other_operator):
    first, second = products_create(2)
    review_claim_next(user=operator)
    review_claim(product=second, user=operator)

    assert list(Product.objects.filter(claimed_by=operator).values_list("pk", flat=True)) == [second.pk]
    with pytest.raises(ClaimConflict, match="olivia"):
        review_claim(product=second, user=other_operator)


# --- Submit -----------------------------------------------------------------------------------------------


def test_submit_writes_tags_product_state_and_one_audit_event(operator):
    (product,) = products_create(1)
    red, dress, wool = TagFactory(name="Red"), TagFactory(name="Dress"), TagFactory(name="Wool")
    cotton = TagFactory(name="Cotton")
    version = ModelVersionFactory(version="v7", is_active=True)
    suggestions_create(product, version, {red: 0.91, dress: 0.72, wool: 0.2})
    review_claim_next(user=operator)

    event = review_submit(product=product, user=operator, tags=["red", "DRESS", "Cotton"])

    product.refresh_from_db()
    assert product.review_status == ReviewStatus.REVIEWED
    assert product.claimed_by_id is None
    assert product.tags_updated_at == event.created_at
    rows = {row.tag.name: row for row in ProductTag.objects.filter(product=product).select_related("tag")}
    assert set(rows) == {"Red", "Dress", "Cotton"}
    assert rows["Red"].source == TagSource.REVIEW and rows["Red"].approved_by_id == operator.pk
    assert rows["Red"].model_version_id == version.pk  # accepted from a suggestion
    assert rows["Cotton"].model_version_id is None  # added by hand
    assert event.action == ReviewAction.SUBMIT and event.user_id == operator.pk
    assert event.model_version_id == version.pk
    assert [(s["tag"], s["score"], s["model_version"]) for s in event.shown] == [
        ("Red", 0.91, "v7"),
        ("Dress", 0.72, "v7"),
        ("Wool", 0.2, "v7"),
    ]
    assert event.accepted == ["Dress", "Red"]
    assert event.rejected == ["Wool"]
    assert event.added == ["Cotton"]
    assert event.final_tags == ["Cotton", "Dress", "Red"]
    assert ReviewEvent.objects.count() == 1
    assert cotton.pk in {row.tag_id for row in rows.values()}


def test_card_and_audit_show_only_the_current_versions_suggestions(operator):
    (product,) = products_create(1)
    red, blue = TagFactory(name="Red"), TagFactory(name="Blue")
    old, new = ModelVersionFactory(version="old"), ModelVersionFactory(version="new", is_active=True)
    suggestions_create(product, old, {blue: 0.99}, current=False)
    suggestions_create(product, new, {red: 0.6})

    card = review_card(product=Product.objects.get(pk=product.pk))
    assert [(chip.name, chip.score) for chip in card.suggestions] == [("Red", 0.6)]

    event = review_submit(product=product, user=operator, tags=[])
    assert [s["tag"] for s in event.shown] == ["Red"]
    assert event.rejected == ["Red"] and event.final_tags == []


def test_submit_keeps_existing_approvals_and_records_removals(operator):
    (product,) = products_create(1)
    kept, dropped = TagFactory(name="Kept"), TagFactory(name="Dropped")
    ProductTag.objects.create(product=product, tag=kept, source=TagSource.IMPORT)
    ProductTag.objects.create(product=product, tag=dropped, source=TagSource.IMPORT)

    event = review_submit(product=product, user=operator, tags=["Kept"])

    row = ProductTag.objects.get(product=product)
    assert row.tag_id == kept.pk and row.source == TagSource.IMPORT  # provenance of a kept tag survives
    assert event.removed == ["Dropped"] and event.added == []
    assert [t["tag"] for t in event.previous_tags] == ["Dropped", "Kept"]


def test_aliases_and_merged_tags_resolve_to_the_canonical_tag(operator):
    (product,) = products_create(1)
    sneakers = TagFactory(name="Sneakers", aliases=("trainers",))
    old = TagFactory(name="Running shoe")
    Tag.objects.filter(pk=old.pk).update(merged_into=sneakers)

    event = review_submit(product=product, user=operator, tags=["Trainers", "running-shoe"])

    assert event.final_tags == ["Sneakers"]
    assert list(ProductTag.objects.filter(product=product).values_list("tag_id", flat=True)) == [sneakers.pk]


def test_operator_cannot_create_tags_and_nothing_is_written(operator):
    (product,) = products_create(1)
    TagFactory(name="Red")
    TagFactory(name="Retired", is_active=False)
    tags_before = Tag.objects.count()

    with pytest.raises(UnknownTags) as info:
        review_submit(product=product, user=operator, tags=["Red", "Brand New Tag", "retired"])

    assert info.value.names == ["Brand New Tag", "retired"]
    assert "Only admins can create new tags" in str(info.value)
    assert Tag.objects.count() == tags_before
    assert not ProductTag.objects.exists() and not ReviewEvent.objects.exists()
    product.refresh_from_db()
    assert product.review_status == ReviewStatus.UNREVIEWED


def test_admin_creates_unknown_tags_on_submit(admin_user):
    (product,) = products_create(1)

    event = review_submit(product=product, user=admin_user, tags=["Linen  Blend"])

    tag = Tag.objects.get(normalized_name="linen blend")
    assert tag.name == "Linen Blend"
    assert event.added == ["Linen Blend"]


def test_submit_is_refused_while_another_user_holds_the_claim(operator, other_operator):
    (product,) = products_create(1)
    TagFactory(name="Red")
    review_claim_next(user=other_operator)

    with pytest.raises(ClaimConflict):
        review_submit(product=product, user=operator, tags=["Red"])
    assert not ReviewEvent.objects.exists()

    _expire_claim(product)  # an expired claim no longer protects the product
    review_submit(product=product, user=operator, tags=["Red"])
    assert ReviewEvent.objects.filter(action=ReviewAction.SUBMIT).count() == 1


def test_hierarchy_closure_approves_ancestors(operator, settings):
    (product,) = products_create(1)
    clothing = TagFactory(name="Clothing")
    dresses = TagFactory(name="Dresses", parent=clothing)
    maxi = TagFactory(name="Maxi dress", parent=dresses)

    event = review_submit(product=product, user=operator, tags=["Maxi dress"])

    sources = dict(ProductTag.objects.filter(product=product).values_list("tag_id", "source"))
    assert sources == {
        maxi.pk: TagSource.REVIEW,
        dresses.pk: TagSource.HIERARCHY,
        clothing.pk: TagSource.HIERARCHY,
    }
    assert event.final_tags == ["Clothing", "Dresses", "Maxi dress"]
    assert event.added == ["Maxi dress"]

    settings.TAGSTUDIO_HIERARCHY_CLOSURE = False
    (other,) = products_create(1, prefix="OFF")
    review_submit(product=other, user=operator, tags=["Maxi dress"])
    assert list(ProductTag.objects.filter(product=other).values_list("tag_id", flat=True)) == [maxi.pk]


@pytest.mark.usefixtures("in_memory_broker")
def test_learning_loop_hook_runs_after_commit(operator, settings, django_capture_on_commit_callbacks):
    """Once the submit commits, the learning loop counts it: with a threshold of one review, it asks for a
    training; before the commit, nothing is asked."""
    settings.RETRAIN_AFTER_REVIEWS = 1
    (product,) = products_create(1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        review_submit(product=product, user=operator, tags=[])
    assert not TrainingJob.objects.exists()
    for callback in callbacks:  # the commit
        callback()
    job = TrainingJob.objects.get()
    assert (job.trigger, job.reviews_at_request) == (TrainingTrigger.AUTO, 1)


def test_stats_count_own_kept_submits(operator, other_operator):
    products = products_create(3)
    for product in products:
        review_submit(product=product, user=operator, tags=[])
    review_undo(user=operator)
    products_create(2, prefix="Q")

    stats = review_stats(user=operator)
    assert (stats.today, stats.total) == (2, 2)
    assert (stats.queue.value, stats.queue.exact) == (3, True)  # the undone product is back + 2 new
    assert review_stats(user=other_operator).total == 0


# --- Undo -------------------------------------------------------------------------------------------------


def test_undo_restores_previous_tags_exactly_and_reopens_the_product(operator):
    first, second = products_create(2)
    imported, chosen = TagFactory(name="Imported"), TagFactory(name="Chosen")
    ProductTag.objects.create(product=first, tag=imported, source=TagSource.IMPORT)
    before = list(
        ProductTag.objects.filter(product=first).values("tag_id", "source", "approved_by", "approved_at")
    )
    review_claim_next(user=operator)
    submit = review_submit(product=first, user=operator, tags=["Chosen"])
    assert review_claim_next(user=operator).pk == second.pk

    undo = review_undo(user=operator)

    first.refresh_from_db()
    second.refresh_from_db()
    after = list(
        ProductTag.objects.filter(product=first).values("tag_id", "source", "approved_by", "approved_at")
    )
    assert after == before
    assert first.review_status == ReviewStatus.UNREVIEWED
    assert first.claimed_by_id == operator.pk  # back on the operator's screen
    assert second.claimed_by_id is None  # the product they had moved on to returns to the queue
    assert undo.action == ReviewAction.UNDO and undo.reverts_id == submit.pk
    assert undo.final_tags == ["Imported"]
    assert chosen.pk not in {row["tag_id"] for row in after}
    with pytest.raises(NothingToUndo):
        review_undo(user=operator)  # nothing else to undo


def test_undo_of_a_re_review_keeps_the_product_reviewed(operator):
    (product,) = products_create(1)
    TagFactory(name="A"), TagFactory(name="B")
    review_submit(product=product, user=operator, tags=["A"])
    review_submit(product=product, user=operator, tags=["B"])

    review_undo(user=operator)

    product.refresh_from_db()
    assert product.review_status == ReviewStatus.REVIEWED
    assert list(ProductTag.objects.filter(product=product).values_list("tag__name", flat=True)) == ["A"]


def test_undo_window_and_product_page_undo(operator, other_operator, admin_user):
    (product,) = products_create(1)
    TagFactory(name="A")
    event = review_submit(product=product, user=operator, tags=["A"])
    ReviewEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - dt.timedelta(hours=2))

    with pytest.raises(NothingToUndo, match="last 10 minutes"):
        review_undo(user=operator)  # the review page's undo is bounded by the claim TTL
    event.refresh_from_db()
    with pytest.raises(NothingToUndo, match="Only the reviewer"):
        review_undo(user=other_operator, event=event)
    review_undo(user=admin_user, event=event)  # reopening the product: no time limit

    assert not ProductTag.objects.filter(product=product).exists()


def test_undo_is_refused_after_someone_reviewed_the_product_again(operator, other_operator):
    (product,) = products_create(1)
    TagFactory(name="A"), TagFactory(name="B")
    review_submit(product=product, user=operator, tags=["A"])
    review_submit(product=product, user=other_operator, tags=["B"])

    with pytest.raises(NothingToUndo, match="reviewed again"):
        review_undo(user=operator)


def test_unknown_tags_error_lists_invalid_names(operator):
    (product,) = products_create(1)
    with pytest.raises(UnknownTags) as info:
        review_submit(product=product, user=operator, tags=["---"])
    assert info.value.names == ["---"]
    assert reviews.hierarchy_closure_enabled() is True
