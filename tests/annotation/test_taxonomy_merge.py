"""Merging tag A into tag B, as issue 8 asks: approved tags, suggestions and audit references move to B
atomically, A becomes an alias of B, and the model's label map follows at the next training."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection

from annotation.models import (
    Product,
    ProductTag,
    ReviewEvent,
    Suggestion,
    Tag,
    TagAlias,
    TagSource,
)
from annotation.selectors.taxonomy import taxonomy_parents_map
from annotation.services.reviews import review_submit
from annotation.services.suggestions import _tag_id_map
from annotation.services.tags import tag_create, tag_merge
from annotation.services.training.data import _training_data
from tests.factories import ModelVersionFactory, ProductTagFactory, SuggestionFactory, products_create

pytestmark = pytest.mark.django_db


def catalog():
    tee, shirt, tops = tag_create(name="Tee"), tag_create(name="Shirt"), tag_create(name="Tops")
    products = products_create(4)
    version = ModelVersionFactory(
        version="v1", is_active=True, config={"tag_ids": {"Tee": tee.pk, "Shirt": shirt.pk}}
    )
    for product in products:
        SuggestionFactory(product=product, tag=tee, model_version=version, score=0.8, selected=True)
        SuggestionFactory(product=product, tag=tops, model_version=version, score=0.3)
    Product.objects.filter(pk__in=[p.pk for p in products]).update(suggested_by=version)
    return tee, shirt, tops, products, version


def test_merge_through_the_api_moves_everything_and_the_label_map_follows(admin_api, admin_user):
    tee, shirt, tops, products, version = catalog()
    ProductTagFactory(product=products[0], tag=tee, source=TagSource.REVIEW, approved_by=admin_user)
    ProductTagFactory(product=products[1], tag=tee, source=TagSource.IMPORT)
    ProductTagFactory(product=products[1], tag=shirt, source=TagSource.IMPORT)
    ProductTagFactory(product=products[2], tag=shirt, source=TagSource.REVIEW)
    ProductTagFactory(product=products[3], tag=tops, source=TagSource.REVIEW)

    response = admin_api.post(f"/api/v1/tags/{tee.pk}/merge/", {"into": shirt.pk}, format="json")
    assert response.status_code == 200, response.content

    assert not ProductTag.objects.filter(tag=tee).exists() and not Suggestion.objects.filter(tag=tee).exists()
    assert set(ProductTag.objects.filter(tag=shirt).values_list("product__external_id", flat=True)) == {
        product.external_id for product in products[:3]
    }
    moved = ProductTag.objects.get(product=products[0])
    assert (moved.tag_id, moved.approved_by) == (shirt.pk, admin_user)
    assert Suggestion.objects.filter(tag=shirt, model_version=version).count() == 4
    assert TagAlias.objects.get(normalized_name="tee").tag_id == shirt.pk
    tee.refresh_from_db()
    assert tee.merged_into_id == shirt.pk and not tee.is_active

    # Until the next training, the active model's "Tee" scores are stored as "Shirt" suggestions ...
    assert _tag_id_map(version) == {"Tee": shirt.pk, "Shirt": shirt.pk}
    assert "Tee" not in taxonomy_parents_map()
    # ... and the next training learns "Shirt" only.
    data = _training_data()
    labels = {tag for record in data.records for tag in record.tags}
    assert labels == {"Shirt", "Tops"} and set(data.tag_ids) == {"Shirt", "Tops"}


def test_merge_is_all_or_nothing(admin_user):
    """A failure in the middle of a merge (here: the database refuses the alias row) changes nothing."""
    tee, shirt, _tops, products, version = catalog()
    ProductTagFactory(product=products[0], tag=tee, source=TagSource.REVIEW)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_alias() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'alias refused for the test'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_alias BEFORE INSERT OR UPDATE ON annotation_tagalias
            FOR EACH ROW EXECUTE FUNCTION refuse_alias();
            """
        )
    with pytest.raises(DatabaseError, match="alias refused"):
        tag_merge(source=tee, target=shirt)
    tee.refresh_from_db()
    assert tee.merged_into_id is None and tee.is_active
    assert ProductTag.objects.get(product=products[0]).tag_id == tee.pk
    assert Suggestion.objects.filter(tag=tee, model_version=version).count() == 4
    assert not TagAlias.objects.exists()


def test_merge_rewrites_the_audit_the_review_service_writes(admin_user):
    """The audit as annotation.services.reviews writes it (names in the lists, {tag, tag_id} rows)."""
    tee, shirt, tops, products, _version = catalog()
    event = review_submit(product=products[0], user=admin_user, tags=["Tee", "Tops"])
    assert event.final_tags == ["Tee", "Tops"] and "Tee" in event.accepted  # names, as documented

    tag_merge(source=tee, target=shirt)

    event = ReviewEvent.objects.get(pk=event.pk)
    shown = {entry["tag_id"]: entry["tag"] for entry in event.shown}
    assert shown == {shirt.pk: "Shirt", tops.pk: "Tops"}
    assert event.final_tags == ["Shirt", "Tops"]
    assert event.accepted == ["Shirt", "Tops"]
    assert "Tee" not in {row["tag"] for row in event.previous_tags}


def test_merge_preview_counts_audit_events_by_name_and_id(admin_user):
    from annotation.selectors.taxonomy import tag_merge_preview

    tee, shirt, _tops, products, _version = catalog()
    review_submit(product=products[0], user=admin_user, tags=["Tee"])
    ProductTagFactory(product=products[1], tag=tee, source=TagSource.IMPORT)
    ProductTagFactory(product=products[1], tag=shirt, source=TagSource.IMPORT)
    preview = tag_merge_preview(source=tee, target=shirt)
    assert preview["approved"] == 2 and preview["approved_already_on_target"] == 1
    assert preview["approved_moving"] == 1
    assert preview["suggestions"] == 4 and preview["suggestions_clashing"] == 0
    assert preview["review_events"] == 1
    assert preview["target_is_descendant"] is False
    assert Tag.objects.get(pk=tee.pk).merged_into_id is None  # a preview changes nothing
