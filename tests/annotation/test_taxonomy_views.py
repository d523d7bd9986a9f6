"""Taxonomy pages: admins only, every change through the tag services, usable with thousands of tags."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    Product,
    ProductTag,
    Setting,
    Tag,
    TagAlias,
    TagSource,
)
from annotation.selectors.taxonomy import HIERARCHY_CLOSURE_SETTING, TREE_PAGE_SIZE, hierarchy_closure_enabled
from annotation.services.tags import tag_alias_add, tag_create
from tests.factories import ModelVersionFactory, ProductTagFactory, SuggestionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


def approve(tag: Tag, *external_ids: str) -> None:
    for external_id in external_ids:
        product, _ = Product.objects.get_or_create(external_id=external_id, defaults={"title": external_id})
        ProductTagFactory(product=product, tag=tag, source=TagSource.REVIEW)


def test_operator_cannot_reach_taxonomy_pages(operator_client):
    tag = tag_create(name="dress")
    for url in (
        reverse("taxonomy"),
        reverse("taxonomy-tree"),
        reverse("taxonomy-search") + "?q=dr",
        reverse("taxonomy-options") + "?q=dr",
        reverse("taxonomy-tag", args=[tag.pk]),
        reverse("taxonomy-merge", args=[tag.pk]) + "?into=dress",
    ):
        assert operator_client.get(url).status_code == 403, url
    posts = {
        reverse("taxonomy-create"): {"name": "gown"},
        reverse("taxonomy-settings"): {"enabled": "on"},
        reverse("taxonomy-rename", args=[tag.pk]): {"name": "gown"},
        reverse("taxonomy-move", args=[tag.pk]): {"parent": ""},
        reverse("taxonomy-alias-add", args=[tag.pk]): {"name": "frock"},
        reverse("taxonomy-active", args=[tag.pk]): {"active": "0"},
        reverse("taxonomy-merge", args=[tag.pk]): {"into": tag.pk},
    }
    for url, data in posts.items():
        assert operator_client.post(url, data).status_code == 403, url
    tag.refresh_from_db()
    assert (tag.name, tag.is_active) == ("dress", True)
    assert not TagAlias.objects.exists() and Tag.objects.count() == 1
    assert not Setting.objects.filter(key=HIERARCHY_CLOSURE_SETTING).exists()


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("taxonomy"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_page_shows_roots_with_counts_and_loads_children_lazily(admin_client):
    apparel = tag_create(name="Apparel")
    dresses = tag_create(name="Dresses", parent=apparel)
    tag_create(name="Maxi dresses", parent=dresses)
    tag_create(name="Footwear")
    approve(apparel, "p1", "p2")
    approve(dresses, "p1")

    page = admin_client.get(reverse("taxonomy")).content.decode()
    assert "Apparel" in page and "Footwear" in page
    assert "Dresses" not in page  # a level below is only loaded when it is opened
    assert f'hx-get="{reverse("taxonomy-tree")}?parent={apparel.pk}"' in page

    level = admin_client.get(reverse("taxonomy-tree"), {"parent": apparel.pk}).content.decode()
    assert "Dresses" in level and "Maxi dresses" not in level
    assert f'?parent={dresses.pk}"' in level  # it has children of its own: expandable
    row = Tag.objects.get(pk=dresses.pk)
    assert row.name in level
    assert admin_client.get(reverse("taxonomy-tree"), {"parent": "x"}).status_code == 404


def test_tree_levels_continue_on_demand(admin_client):
    parent = tag_create(name="Brands")
    now = timezone.now()
    Tag.objects.bulk_create(
        [
            Tag(
                name=f"Brand {i:04d}",
                normalized_name=f"brand {i:04d}",
                parent=parent,
                created_at=now,
                updated_at=now,
            )
            for i in range(TREE_PAGE_SIZE + 5)
        ]
    )
    first = admin_client.get(reverse("taxonomy-tree"), {"parent": parent.pk}).content.decode()
    assert first.count("data-tag=") == TREE_PAGE_SIZE
    assert "Show more" in first and f"after=brand%20{TREE_PAGE_SIZE - 1:04d}" in first
    rest = admin_client.get(
        reverse("taxonomy-tree"), {"parent": parent.pk, "after": f"brand {TREE_PAGE_SIZE - 1:04d}"}
    ).content.decode()
    assert rest.count("data-tag=") == 5 and "Show more" not in rest


def test_search_by_name_and_alias(admin_client):
    tee = tag_create(name="T-Shirts", parent=tag_create(name="Tops"))
    tag_alias_add(tag=tee, name="tee")
    tag_create(name="Teapots")
    by_alias = admin_client.get(reverse("taxonomy-search"), {"q": "TEE"}).content.decode()
    assert "T-Shirts" in by_alias and "alias: tee" in by_alias and "Tops › T-Shirts" in by_alias
    assert "Teapots" not in by_alias
    # Folding applies to the query too: "t_shirt" finds "T-Shirts".
    page = admin_client.get(reverse("taxonomy"), {"q": "t_shirt"}).content.decode()
    assert "T-Shirts" in page
    options = admin_client.get(
        reverse("taxonomy-options"), {"field": "parent", "parent": "tea"}
    ).content.decode()
    assert '<option value="Teapots">' in options and "T-Shirts" not in options


def test_create_with_parent_picked_by_alias_and_normalised_duplicates_refused(admin_client):
    tops = tag_create(name="Tops")
    tag_alias_add(tag=tops, name="upper wear")
    response = admin_client.post(reverse("taxonomy-create"), {"name": "  T-Shirt ", "parent": "Upper_Wear"})
    tag = Tag.objects.get(normalized_name="t shirt")
    assert response.status_code == 302 and response["Location"] == reverse("taxonomy-tag", args=[tag.pk])
    assert (tag.name, tag.parent_id) == ("T-Shirt", tops.pk)

    for spelling in ("t shirt", "T_SHIRT", "Ｔ－ＳＨＩＲＴ"):
        response = admin_client.post(reverse("taxonomy-create"), {"name": spelling})
        assert response.status_code == 400 and "is taken by tag" in response.content.decode()
    response = admin_client.post(reverse("taxonomy-create"), {"name": "Polo", "parent": "no such tag"})
    assert response.status_code == 400 and "No tag is named" in response.content.decode()
    assert Tag.objects.count() == 2


def test_rename_move_alias_and_deactivate(admin_client):
    apparel, shoes = tag_create(name="Apparel"), tag_create(name="Shoes")
    sneakers = tag_create(name="sneakers", parent=shoes)

    response = admin_client.post(reverse("taxonomy-rename", args=[sneakers.pk]), {"name": "Sneakers"})
    assert response.status_code == 302
    response = admin_client.post(reverse("taxonomy-rename", args=[sneakers.pk]), {"name": "Trainers"})
    sneakers.refresh_from_db()
    assert sneakers.name == "Trainers"
    assert TagAlias.objects.filter(tag=sneakers, normalized_name="sneakers").exists()

    assert (
        admin_client.post(reverse("taxonomy-move", args=[sneakers.pk]), {"parent": "apparel"}).status_code
        == 302
    )
    sneakers.refresh_from_db()
    assert sneakers.parent_id == apparel.pk
    # A cycle is refused with the service's message, on the page.
    response = admin_client.post(reverse("taxonomy-move", args=[apparel.pk]), {"parent": "Trainers"})
    assert response.status_code == 400 and "cycle" in response.content.decode()
    assert admin_client.post(reverse("taxonomy-move", args=[sneakers.pk]), {"parent": ""}).status_code == 302
    assert Tag.objects.get(pk=sneakers.pk).parent_id is None

    assert (
        admin_client.post(reverse("taxonomy-alias-add", args=[sneakers.pk]), {"name": "kicks"}).status_code
        == 302
    )
    response = admin_client.post(reverse("taxonomy-alias-add", args=[shoes.pk]), {"name": "KICKS"})
    assert response.status_code == 400 and "is taken by" in response.content.decode()

    admin_client.post(reverse("taxonomy-active", args=[sneakers.pk]), {"active": "0"})
    assert not Tag.objects.get(pk=sneakers.pk).is_active
    detail = admin_client.get(reverse("taxonomy-tag", args=[sneakers.pk])).content.decode()
    assert "inactive" in detail and "kicks" in detail and "Reactivate" in detail
    admin_client.post(reverse("taxonomy-active", args=[sneakers.pk]), {"active": "1"})
    assert Tag.objects.get(pk=sneakers.pk).is_active


def test_merge_confirmation_shows_what_moves_then_merges(admin_client, admin_user):
    tee, shirt = tag_create(name="Tee"), tag_create(name="Shirt")
    tag_alias_add(tag=tee, name="tees")
    child = tag_create(name="Tee polo", parent=tee)
    approve(tee, "p1", "p2", "p3")
    approve(shirt, "p1")
    version = ModelVersionFactory(version="v1")
    SuggestionFactory(
        product=Product.objects.get(external_id="p2"), tag=tee, model_version=version, score=0.7
    )

    preview = admin_client.get(reverse("taxonomy-merge", args=[tee.pk]), {"into": "shirt"})
    body = preview.content.decode()
    assert preview.status_code == 200
    assert 'data-moves="approved">2<' in body  # p1 already carries Shirt: 2 rows move
    assert 'data-moves="suggestions">1<' in body
    assert "tees" in body and "Tee polo" in body
    assert Tag.objects.get(pk=tee.pk).merged_into_id is None  # nothing changed yet

    response = admin_client.post(reverse("taxonomy-merge", args=[tee.pk]), {"into": shirt.pk})
    assert response.status_code == 302 and response["Location"] == reverse("taxonomy-tag", args=[shirt.pk])
    tee.refresh_from_db()
    assert tee.merged_into_id == shirt.pk and not tee.is_active
    assert (
        ProductTag.objects.filter(tag=shirt).count() == 3 and not ProductTag.objects.filter(tag=tee).exists()
    )
    assert Tag.objects.get(pk=child.pk).parent_id == shirt.pk
    assert set(TagAlias.objects.filter(tag=shirt).values_list("normalized_name", flat=True)) == {
        "tee",
        "tees",
    }
    # The merged tag's page says where it went; searching the old name finds the target.
    assert "was merged into" in admin_client.get(reverse("taxonomy-tag", args=[tee.pk])).content.decode()
    assert "alias: Tee" in admin_client.get(reverse("taxonomy-search"), {"q": "tee"}).content.decode()

    # Refusals come back as messages, nothing half-done.
    response = admin_client.get(reverse("taxonomy-merge", args=[shirt.pk]), {"into": "nothing like it"})
    assert response.status_code == 400 and "No tag is named" in response.content.decode()
    response = admin_client.post(reverse("taxonomy-merge", args=[shirt.pk]), {"into": shirt.pk}, follow=True)
    assert "cannot be merged into itself" in response.content.decode()


def test_hierarchy_closure_option(admin_client, settings):
    settings.TAGSTUDIO_HIERARCHY_CLOSURE = True
    assert hierarchy_closure_enabled() is True
    page = admin_client.get(reverse("taxonomy")).content.decode()
    assert 'id="hierarchy-closure" checked' in page

    admin_client.post(reverse("taxonomy-settings"), {})  # unchecked box: off
    assert Setting.objects.get(key=HIERARCHY_CLOSURE_SETTING).value is False
    assert hierarchy_closure_enabled() is False
    assert 'id="hierarchy-closure-state">off<' in admin_client.get(reverse("taxonomy")).content.decode()

    admin_client.post(reverse("taxonomy-settings"), {"enabled": "on"})
    assert hierarchy_closure_enabled() is True


@pytest.mark.parametrize("value", [None, "", "yes", "true", "2", "01", "0 "])
def test_activate_endpoint_refuses_anything_but_0_and_1(admin_client, value):
    """Issue 14: any value other than active=1 used to deactivate the tag."""
    tag = tag_create(name="Sandals")
    data = {} if value is None else {"active": value}
    response = admin_client.post(reverse("taxonomy-active", args=[tag.pk]), data)
    assert response.status_code == 400
    assert "must be 0 (deactivate) or 1 (reactivate)" in response.content.decode()
    assert Tag.objects.get(pk=tag.pk).is_active
