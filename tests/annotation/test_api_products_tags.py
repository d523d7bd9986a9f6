"""Products and tags over REST."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import resolve
from django.utils import timezone

from annotation.models import (
    ReviewAction,
    ReviewStatus,
    Tag,
    TagSource,
)
from annotation.services.tags import tag_alias_add, tag_create
from tests.factories import (
    ModelVersionFactory,
    ProductFactory,
    ProductTagFactory,
    ReviewEventFactory,
    SuggestionFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(admin_user):
    tops = tag_create(name="Tops")
    shirts = tag_create(name="Shirts", parent=tops)
    linen = tag_create(name="Linen")
    tag_alias_add(tag=linen, name="flax")
    old, new = (
        ModelVersionFactory(version="v1"),
        ModelVersionFactory(version="v2"),
    )
    week_ago = timezone.now() - dt.timedelta(days=7)
    shirt = ProductFactory(
        external_id="SKU/1",
        title="Linen shirt",
        brand="Acme",
        review_status=ReviewStatus.REVIEWED,
        suggested_by=new,
        updated_at=week_ago,
        tags_updated_at=timezone.now(),
    )
    dress = ProductFactory(external_id="SKU-2", title="Summer dress", updated_at=week_ago)
    ProductTagFactory(
        product=shirt, tag=shirts, source=TagSource.REVIEW, approved_by=admin_user, model_version=new
    )
    ProductTagFactory(product=shirt, tag=linen, source=TagSource.IMPORT)
    SuggestionFactory(product=shirt, tag=linen, model_version=new, score=0.8, selected=True)
    SuggestionFactory(product=shirt, tag=shirts, model_version=new, score=0.6)
    SuggestionFactory(product=shirt, tag=tops, model_version=old, score=0.99)  # stale version
    ReviewEventFactory(
        product=shirt, user=admin_user, action=ReviewAction.SUBMIT, model_version=new, final_tags=[shirts.pk]
    )
    return {"shirt": shirt, "dress": dress, "tags": (tops, shirts, linen)}


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [p["external_id"] for p in response.json()["results"]]


def test_product_list_and_filters(operator_api, shop):
    assert ids(operator_api.get("/api/v1/products/")) == ["SKU-2", "SKU/1"]
    assert ids(operator_api.get("/api/v1/products/?status=reviewed")) == ["SKU/1"]
    assert ids(operator_api.get("/api/v1/products/?tag=FLAX")) == ["SKU/1"]  # an alias
    assert ids(operator_api.get("/api/v1/products/?q=dress")) == ["SKU-2"]
    assert ids(operator_api.get("/api/v1/products/?q=acme")) == ["SKU/1"]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(operator_api.get("/api/v1/products/", {"updated_since": since})) == ["SKU/1"]
    first = operator_api.get("/api/v1/products/").json()["results"][1]
    assert first["tags"] == ["Linen", "Shirts"] and first["suggested_by"] == "v2"


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=done", "status"), ("tag=nosuchtag", "tag"), ("updated_since=soon", "updated_since")],
)
def test_product_filter_errors(operator_api, shop, query, field):
    response = operator_api.get(f"/api/v1/products/?{query}")
    assert response.status_code == 400 and field in response.json()["fields"]


def test_product_detail(operator_api, shop):
    body = operator_api.get("/api/v1/products/SKU/1/").json()
    assert body["external_id"] == "SKU/1"
    assert [
        (t["name"], t["path"], t["source"], t["approved_by"], t["model_version"])
        for t in body["approved_tags"]
    ] == [
        ("Linen", ["Linen"], "import", None, None),
        ("Shirts", ["Tops", "Shirts"], "review", "adam", "v2"),
    ]
    assert body["suggested_by"] == "v2"
    assert [(s["name"], s["score"], s["selected"]) for s in body["suggestions"]] == [
        ("Linen", 0.8, True),
        ("Shirts", 0.6, False),
    ]
    assert [(e["action"], e["user"], e["model_version"]) for e in body["review_history"]] == [
        ("submit", "adam", "v2")
    ]
    assert operator_api.get("/api/v1/products/SKU-404/").status_code == 404


def test_product_detail_leaves_review_actions_to_their_routes():
    assert resolve("/api/v1/products/SKU/1/").url_name == "api-product"
    assert resolve("/api/v1/products/SKU/1/review/").url_name == "api-product-review"
    assert resolve("/api/v1/products/SKU/1/release/").url_name == "api-product-release"


# --- tags ------------------------------------------------------------------------------------------------


def test_tag_list_and_search(operator_api, shop):
    body = operator_api.get("/api/v1/tags/").json()
    assert [t["name"] for t in body["results"]] == ["Linen", "Shirts", "Tops"]
    shirts = body["results"][1]
    assert shirts["path"] == ["Tops", "Shirts"] and shirts["parent"] == shop["tags"][0].pk
    assert [t["name"] for t in operator_api.get("/api/v1/tags/?search=fla").json()["results"]] == ["Linen"]
    assert [t["name"] for t in operator_api.get("/api/v1/tags/?root=true").json()["results"]] == [
        "Linen",
        "Tops",
    ]
    page = operator_api.get("/api/v1/tags/?page_size=2").json()
    assert len(page["results"]) == 2 and [
        t["name"] for t in operator_api.get(page["next"]).json()["results"]
    ] == ["Tops"]


def test_operators_read_tags_but_cannot_change_them(operator_api, shop):
    tag = shop["tags"][2]
    assert operator_api.get(f"/api/v1/tags/{tag.pk}/").status_code == 200
    assert operator_api.post("/api/v1/tags/", {"name": "x"}, format="json").status_code == 403
    assert operator_api.patch(f"/api/v1/tags/{tag.pk}/", {"name": "x"}, format="json").status_code == 403
    assert (
        operator_api.post(f"/api/v1/tags/{tag.pk}/aliases/", {"name": "x"}, format="json").status_code == 403
    )
    assert (
        operator_api.post(f"/api/v1/tags/{tag.pk}/merge/", {"into": tag.pk}, format="json").status_code == 403
    )


def test_admin_tag_lifecycle(admin_api, shop):
    tops, shirts, linen = shop["tags"]
    created = admin_api.post("/api/v1/tags/", {"name": "Tees", "parent": tops.pk}, format="json")
    assert created.status_code == 201 and created.json()["path"] == ["Tops", "Tees"]
    tee_id = created.json()["id"]

    renamed = admin_api.patch(f"/api/v1/tags/{tee_id}/", {"name": "T-Shirts"}, format="json").json()
    assert renamed["name"] == "T-Shirts" and renamed["aliases"] == ["Tees"]
    cycle = admin_api.patch(f"/api/v1/tags/{tops.pk}/", {"parent": tee_id}, format="json")
    assert cycle.status_code == 400 and "parent" in cycle.json()["fields"]
    assert admin_api.patch(f"/api/v1/tags/{tee_id}/", {"parent": None}, format="json").json()["path"] == [
        "T-Shirts"
    ]

    alias = admin_api.post(f"/api/v1/tags/{tee_id}/aliases/", {"name": "tee"}, format="json")
    assert alias.status_code == 201 and alias.json()["tag"] == tee_id
    taken = admin_api.post(f"/api/v1/tags/{linen.pk}/aliases/", {"name": "TEE"}, format="json")
    assert taken.status_code == 409 and taken.json()["error"] == "conflict"

    merged = admin_api.post(f"/api/v1/tags/{tee_id}/merge/", {"into": shirts.pk}, format="json")
    assert merged.status_code == 200 and merged.json()["id"] == shirts.pk
    assert set(merged.json()["aliases"]) >= {"T-Shirts", "tee"}
    gone = admin_api.get(f"/api/v1/tags/{tee_id}/").json()
    assert gone["merged_into"] == shirts.pk and gone["is_active"] is False
    again = admin_api.post(f"/api/v1/tags/{tee_id}/merge/", {"into": linen.pk}, format="json")
    assert again.status_code == 409

    off = admin_api.patch(f"/api/v1/tags/{linen.pk}/", {"is_active": False}, format="json").json()
    assert off["is_active"] is False
    assert [
        t["name"] for t in admin_api.get("/api/v1/tags/?is_active=false&merged=false").json()["results"]
    ] == ["Linen"]


def test_merge_validation(admin_api, shop):
    tops = shop["tags"][0]
    assert (
        admin_api.post(f"/api/v1/tags/{tops.pk}/merge/", {"into": 999999}, format="json").status_code == 400
    )
    assert admin_api.post(f"/api/v1/tags/{tops.pk}/merge/", {}, format="json").status_code == 400
    assert admin_api.post("/api/v1/tags/999999/merge/", {"into": tops.pk}, format="json").status_code == 404
    same = admin_api.post(f"/api/v1/tags/{tops.pk}/merge/", {"into": tops.pk}, format="json")
    assert same.status_code == 400 and "into" in same.json()["fields"]
    assert Tag.objects.filter(merged_into__isnull=False).count() == 0
