"""The taxonomy services: names taken once, no cycles, merges that move everything atomically."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from annotation.models import (
    Product,
    ProductTag,
    ReviewAction,
    Suggestion,
    Tag,
    TagAlias,
    TagSource,
)
from annotation.selectors.catalog import tag_lookup
from annotation.selectors.taxonomy import tag_paths
from annotation.services.tags import (
    TagConflictError,
    TagRuleError,
    tag_activate,
    tag_alias_add,
    tag_create,
    tag_deactivate,
    tag_merge,
    tag_rename,
    tag_set_parent,
    tag_update,
)
from annotation.taxonomy.resolver import TagResolver
from tests.factories import (
    ModelVersionFactory,
    ProductFactory,
    ProductTagFactory,
    ReviewEventFactory,
    SuggestionFactory,
)

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - dt.timedelta(days=30)


def make_product(external_id: str, *tags: Tag, user=None) -> Product:
    product = ProductFactory(
        external_id=external_id, title=f"Product {external_id}", tags_updated_at=LONG_AGO
    )
    for tag in tags:
        ProductTagFactory(product=product, tag=tag, source=TagSource.REVIEW, approved_by=user)
    return product


def stamp(product: Product) -> dt.datetime | None:
    return Product.objects.get(pk=product.pk).tags_updated_at


def test_create_refuses_a_name_taken_by_a_tag_or_an_alias():
    shirt = tag_create(name="T-Shirt")
    assert (shirt.name, shirt.normalized_name) == ("T-Shirt", "t shirt")
    with pytest.raises(TagConflictError, match="taken by tag 'T-Shirt'"):
        tag_create(name="t shirt")
    tag_alias_add(tag=shirt, name="Tee")
    with pytest.raises(TagConflictError, match="alias of tag 'T-Shirt'"):
        tag_create(name="TEE")
    with pytest.raises(TagRuleError) as bad:
        tag_create(name="   ")
    assert bad.value.field == "name"


def test_alias_add_refuses_names_in_use_and_merged_tags():
    shirt, top = tag_create(name="shirt"), tag_create(name="top")
    tag_alias_add(tag=shirt, name="tee")
    with pytest.raises(TagConflictError):
        tag_alias_add(tag=top, name="Tee")  # alias of another tag
    with pytest.raises(TagConflictError):
        tag_alias_add(tag=top, name="SHIRT")  # a tag's name
    tag_merge(source=top, target=shirt)
    with pytest.raises(TagConflictError, match="merged into"):
        tag_alias_add(tag=Tag.objects.get(pk=top.pk), name="blouse")
    assert tag_lookup("tee") == shirt


def test_rename_keeps_the_old_name_as_alias_and_stamps_products():
    tag = tag_create(name="tshirt")
    product = make_product("p1", tag)
    tag_rename(tag=tag, name="T-Shirt")
    tag.refresh_from_db()
    assert tag.name == "T-Shirt"
    assert TagAlias.objects.get(tag=tag).normalized_name == "tshirt"
    assert tag_lookup("tshirt") == tag
    assert stamp(product) > LONG_AGO
    # A rename to one of its own aliases swaps the two names.
    tag_rename(tag=tag, name="tshirt")
    tag.refresh_from_db()
    assert tag.normalized_name == "tshirt"
    assert list(TagAlias.objects.filter(tag=tag).values_list("normalized_name", flat=True)) == ["t shirt"]


def test_rename_refuses_a_name_of_another_tag():
    tag_create(name="dress")
    skirt = tag_create(name="skirt")
    with pytest.raises(TagConflictError):
        tag_rename(tag=skirt, name="Dress")


def test_set_parent_refuses_cycles_and_stamps_the_subtree():
    clothing, tops, shirts = tag_create(name="clothing"), tag_create(name="tops"), tag_create(name="shirts")
    tag_set_parent(tag=tops, parent=clothing)
    tag_set_parent(tag=shirts, parent=tops)
    assert tag_paths([shirts.pk]) == {shirts.pk: ["clothing", "tops", "shirts"]}
    with pytest.raises(TagRuleError, match="cycle") as cycle:
        tag_set_parent(tag=clothing, parent=shirts)
    assert cycle.value.field == "parent"
    with pytest.raises(TagRuleError):
        tag_set_parent(tag=clothing, parent=clothing)
    product = make_product("p1", shirts)
    tag_set_parent(tag=tops, parent=None)  # shirts' path changes: its product is exported again
    assert tag_paths([shirts.pk]) == {shirts.pk: ["tops", "shirts"]}
    assert stamp(product) > LONG_AGO


def test_deactivate_and_activate_are_idempotent_and_stamp_products():
    tag = tag_create(name="vintage")
    product = make_product("p1", tag)
    tag_deactivate(tag=tag)
    first = stamp(product)
    assert first > LONG_AGO and not Tag.objects.get(pk=tag.pk).is_active
    tag_deactivate(tag=tag)
    assert stamp(product) == first  # nothing changed, nothing stamped
    tag_activate(tag=tag)
    assert Tag.objects.get(pk=tag.pk).is_active


def test_merge_moves_everything_to_the_target(admin_user):
    shirt, tee, top = tag_create(name="shirt"), tag_create(name="tee"), tag_create(name="tops")
    tag_set_parent(tag=shirt, parent=top)
    child = tag_create(name="tee polo", parent=tee)
    tag_alias_add(tag=tee, name="t")
    old = tag_create(name="teeshirt")
    tag_merge(source=old, target=tee)  # merged into the source earlier: must end up one hop from shirt
    both = make_product("both", shirt, tee, user=admin_user)
    only_tee = make_product("only-tee", tee, user=admin_user)
    version = ModelVersionFactory(version="v1")
    SuggestionFactory(product=both, tag=shirt, model_version=version, score=0.3, selected=False)
    SuggestionFactory(product=both, tag=tee, model_version=version, score=0.9, selected=True)
    SuggestionFactory(product=only_tee, tag=tee, model_version=version, score=0.4)
    # The review service's audit shapes: names in the lists, {tag, tag_id} rows in shown/previous_tags.
    event = ReviewEventFactory(
        product=both,
        user=admin_user,
        action=ReviewAction.SUBMIT,
        shown=[
            {"tag": "tee", "tag_id": tee.pk, "score": 0.9},
            {"tag": "shirt", "tag_id": shirt.pk, "score": 0.3},
        ],
        previous_tags=[
            {"tag": "shirt", "tag_id": shirt.pk, "source": "import"},
            {"tag": "tee", "tag_id": tee.pk, "source": "review"},
        ],
        final_tags=["shirt", "tee"],
        accepted=["tee"],
        removed=["TeeShirt"],  # the name of a tag merged into tee earlier (an alias of tee now)
    )
    legacy = ReviewEventFactory(  # an event that stored ids
        product=only_tee, user=admin_user, action=ReviewAction.SUBMIT, final_tags=[tee.pk], accepted=[tee.pk]
    )

    result = tag_merge(source=tee, target=shirt)

    assert result == shirt
    tee.refresh_from_db()
    assert (tee.merged_into_id, tee.is_active) == (shirt.pk, False)
    # Approved tags: deduplicated on 'both', moved on 'only-tee' with their approver kept.
    assert set(ProductTag.objects.filter(product=both).values_list("tag_id", flat=True)) == {shirt.pk}
    moved = ProductTag.objects.get(product=only_tee)
    assert (moved.tag_id, moved.source, moved.approved_by) == (shirt.pk, TagSource.MERGE, admin_user)
    assert not ProductTag.objects.filter(tag=tee).exists()
    # Suggestions: the clash keeps the higher score and the selection.
    clash = Suggestion.objects.get(product=both, model_version=version)
    assert (clash.tag_id, clash.score, clash.selected) == (shirt.pk, 0.9, True)
    assert Suggestion.objects.get(product=only_tee).tag_id == shirt.pk
    # Audit references, aliases, children, earlier merges.
    event.refresh_from_db()
    assert event.final_tags == ["shirt"] and event.accepted == ["shirt"] and event.removed == ["shirt"]
    assert event.shown == [{"tag": "shirt", "tag_id": shirt.pk, "score": 0.9}]  # one row, the higher score
    assert event.previous_tags == [
        {"tag": "shirt", "tag_id": shirt.pk, "source": "import"}
    ]  # undo restores once
    legacy.refresh_from_db()
    assert legacy.final_tags == [shirt.pk] and legacy.accepted == [shirt.pk]
    assert set(TagAlias.objects.filter(tag=shirt).values_list("normalized_name", flat=True)) == {
        "t",
        "tee",
        "teeshirt",
    }
    assert Tag.objects.get(pk=child.pk).parent_id == shirt.pk
    assert Tag.objects.get(pk=old.pk).merged_into_id == shirt.pk
    # Every entry point resolves the old names to the target.
    resolver = TagResolver()
    assert resolver.lookup("tee") == resolver.lookup("teeshirt") == resolver.lookup("t") == shirt.pk
    assert tag_lookup("Tee") == shirt
    assert stamp(both) > LONG_AGO and stamp(only_tee) > LONG_AGO


def test_merge_refusals():
    a, b, c = tag_create(name="a"), tag_create(name="b"), tag_create(name="c")
    with pytest.raises(TagRuleError):
        tag_merge(source=a, target=a)
    tag_set_parent(tag=b, parent=a)
    with pytest.raises(TagRuleError, match="below"):
        tag_merge(source=a, target=b)  # into its own descendant
    tag_deactivate(tag=c)
    with pytest.raises(TagConflictError, match="deactivated"):
        tag_merge(source=a, target=c)
    tag_activate(tag=c)
    tag_merge(source=c, target=a)
    with pytest.raises(TagConflictError, match="already merged"):
        tag_merge(source=Tag.objects.get(pk=c.pk), target=b)
    with pytest.raises(TagConflictError):
        tag_merge(source=b, target=Tag.objects.get(pk=c.pk))


def test_update_applies_all_changes_or_none():
    parent, tag = tag_create(name="parent"), tag_create(name="child")
    tag_create(name="taken")
    with pytest.raises(TagConflictError):
        tag_update(tag=tag, parent=parent, name="taken")
    tag.refresh_from_db()
    assert tag.parent_id is None  # the move was rolled back with the refused rename
    tag_update(tag=tag, parent=parent, name="Child Tag", description="x", is_active=False)
    tag.refresh_from_db()
    assert (tag.parent_id, tag.name, tag.description, tag.is_active) == (parent.pk, "Child Tag", "x", False)
