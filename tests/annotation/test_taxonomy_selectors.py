"""Taxonomy reads: the maps the model's post-processing uses, tree levels, search and the closure option."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import Setting, Tag, TagSource
from annotation.selectors.taxonomy import (
    HIERARCHY_CLOSURE_SETTING,
    hierarchy_closure_enabled,
    tag_ancestors,
    tag_children,
    tag_search,
    taxonomy_inactive_tags,
    taxonomy_parents_map,
)
from annotation.services.tags import tag_alias_add, tag_create, tag_deactivate, tag_merge
from annotation.services.taxonomy_settings import hierarchy_closure_set
from mlcore.postprocess import PostProcessConfig, postprocess_scores
from tests.factories import ProductFactory, ProductTagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shoes_taxonomy():
    shoes = tag_create(name="Shoes")
    sneakers = tag_create(name="Sneakers", parent=shoes)
    running = tag_create(name="Running shoes", parent=sneakers)
    tag_alias_add(tag=sneakers, name="trainers")
    kicks = tag_create(name="Kicks")
    tag_merge(source=kicks, target=sneakers)
    boots = tag_create(name="Boots", parent=shoes)
    tag_deactivate(tag=boots)
    return {"shoes": shoes, "sneakers": sneakers, "running": running, "boots": boots}


def test_maps_for_postprocessing(shoes_taxonomy):
    assert taxonomy_parents_map() == {
        "Shoes": None,
        "Sneakers": "Shoes",
        "Running shoes": "Sneakers",
        "Boots": "Shoes",
    }
    assert taxonomy_parents_map(key="normalized_name")["running shoes"] == "sneakers"
    assert taxonomy_inactive_tags() == {"Boots"}

    # The maps plug straight into mlcore's post-processing: a selected child selects its ancestors, a
    # deactivated tag is never suggested.
    config = PostProcessConfig(parents=taxonomy_parents_map(), blocked=taxonomy_inactive_tags())
    result = {
        s.tag: s.selected for s in postprocess_scores({"Running shoes": 0.9, "Boots": 0.95}, config=config)
    }
    assert result == {"Running shoes": True, "Sneakers": True, "Shoes": True}


def test_hierarchy_closure_setting_overrides_the_deployment_default(settings, admin_user):
    settings.TAGSTUDIO_HIERARCHY_CLOSURE = False
    assert hierarchy_closure_enabled() is False
    hierarchy_closure_set(enabled=True, user=admin_user)
    assert hierarchy_closure_enabled() is True
    setting = Setting.objects.get(key=HIERARCHY_CLOSURE_SETTING)
    assert setting.value is True and setting.updated_by == admin_user
    hierarchy_closure_set(enabled=False)
    assert hierarchy_closure_enabled() is False
    del settings.TAGSTUDIO_HIERARCHY_CLOSURE
    Setting.objects.all().delete()
    assert hierarchy_closure_enabled() is True  # on unless someone turns it off


def test_tree_levels_with_counts(shoes_taxonomy):
    product = ProductFactory(external_id="p1", title="Runner")
    ProductTagFactory(product=product, tag=shoes_taxonomy["running"], source=TagSource.REVIEW)
    ProductTagFactory(product=product, tag=shoes_taxonomy["sneakers"], source=TagSource.HIERARCHY)
    roots = tag_children(parent_id=None)
    assert [row["name"] for row in roots["tags"]] == ["Shoes"]  # the merged "Kicks" is no longer a tag
    assert roots["tags"][0]["child_count"] == 2 and roots["next_after"] is None
    level = tag_children(parent_id=shoes_taxonomy["shoes"].pk)
    assert [(r["name"], r["product_count"], r["child_count"]) for r in level["tags"]] == [
        ("Boots", 0, 0),
        ("Sneakers", 1, 1),
    ]
    assert [
        r["name"] for r in tag_children(parent_id=shoes_taxonomy["shoes"].pk, include_inactive=False)["tags"]
    ] == ["Sneakers"]
    page = tag_children(parent_id=shoes_taxonomy["shoes"].pk, limit=1)
    assert [r["name"] for r in page["tags"]] == ["Boots"] and page["next_after"] == "boots"
    rest = tag_children(parent_id=shoes_taxonomy["shoes"].pk, after=page["next_after"], limit=1)
    assert [r["name"] for r in rest["tags"]] == ["Sneakers"] and rest["next_after"] is None
    assert [t.name for t in tag_ancestors(shoes_taxonomy["running"])] == ["Shoes", "Sneakers"]


def test_search_ranks_exact_then_prefix_then_contains(shoes_taxonomy):
    now = timezone.now()
    Tag.objects.bulk_create(
        [
            Tag(name=f"Sneaker care {i}", normalized_name=f"sneaker care {i}", created_at=now, updated_at=now)
            for i in range(3)
        ]
    )
    names = [row["name"] for row in tag_search("sneakers")]
    assert names == ["Sneakers"]
    names = [row["name"] for row in tag_search("sneaker")]
    assert names[0] == "Sneakers" and set(names[1:]) == {"Sneaker care 0", "Sneaker care 1", "Sneaker care 2"}
    by_alias = tag_search("KICKS")  # a merged name is an alias of its target now
    assert [(row["name"], row["matched_aliases"]) for row in by_alias] == [("Sneakers", ["Kicks"])]
    assert [row["name"] for row in tag_search("boots", active_only=True)] == []
    assert tag_search("---") == [] and tag_search("sneak", limit=2)[0]["name"] == "Sneakers"
    assert len(tag_search("sneak", limit=2)) == 2
