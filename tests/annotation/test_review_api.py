"""The review REST API: /api/v1/review/next/, /products/{external_id}/review/ and /release/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from annotation.models import Product, ProductTag, ReviewEvent, ReviewStatus, TagSource
from tests.factories import (
    ModelVersionFactory,
    OperatorFactory,
    TagFactory,
    products_create,
    suggestions_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def other_api(db) -> APIClient:
    token = OperatorFactory(username="otto", password="x").auth_token.key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_next_claims_and_returns_product_suggestions_and_expiry(operator_api, operator):
    (product,) = products_create(1, priority=1.0)
    red, blue = TagFactory(name="Red"), TagFactory(name="Blue")
    ProductTag.objects.create(product=product, tag=blue, source=TagSource.IMPORT)
    suggestions_create(product, ModelVersionFactory(version="v3", is_active=True), {red: 0.8, blue: 0.3})

    response = operator_api.post("/api/v1/review/next/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["product"]["external_id"] == product.external_id
    assert body["product"]["review_status"] == "unreviewed"
    assert body["suggestions"] == [
        # No artifact of v3 on this machine: no reasons (tests/annotation/test_review_api_reasons.py).
        {
            "tag": "Red",
            "score": 0.8,
            "selected": True,
            "checked": True,
            "model_version": "v3",
            "reason": None,
        },
        {
            "tag": "Blue",
            "score": 0.3,
            "selected": False,
            "checked": True,
            "model_version": "v3",
            "reason": None,
        },  # approved (import): starts checked
    ]
    assert body["approved_tags"] == [{"tag": "Blue", "source": "import"}]
    assert body["model_version"] == "v3"
    assert body["claim_expires_at"]
    assert Product.objects.get(pk=product.pk).claimed_by == operator


def test_next_answers_204_on_an_empty_queue(operator_api):
    response = operator_api.post("/api/v1/review/next/")
    assert response.status_code == 204
    assert response.content == b""


def test_submit_then_the_queue_moves_on(operator_api):
    first, second = products_create(2)
    TagFactory(name="Red")
    operator_api.post("/api/v1/review/next/")

    response = operator_api.post(
        f"/api/v1/products/{first.external_id}/review/", {"tags": ["red"]}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["product"] == first.external_id
    assert body["review_status"] == "reviewed"
    assert body["tags"] == ["Red"] and body["added"] == ["Red"]
    assert ReviewEvent.objects.get(pk=body["event_id"]).product_id == first.pk
    assert operator_api.post("/api/v1/review/next/").json()["product"]["external_id"] == second.external_id


def test_submit_409_when_another_user_holds_the_claim(operator_api, other_api):
    (product,) = products_create(1)
    TagFactory(name="Red")
    assert other_api.post("/api/v1/review/next/").status_code == 200

    response = operator_api.post(
        f"/api/v1/products/{product.external_id}/review/", {"tags": ["Red"]}, format="json"
    )

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert "otto" in body["detail"]
    assert not ReviewEvent.objects.exists()


def test_submit_400_names_the_unknown_tags_in_fields(operator_api):
    (product,) = products_create(1)
    TagFactory(name="Red")

    response = operator_api.post(
        f"/api/v1/products/{product.external_id}/review/",
        {"tags": ["Red", "Nope", "Also nope"]},
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unknown_tags"
    assert body["fields"] == {"tags": ["Nope", "Also nope"]}
    assert "Only admins can create new tags" in body["detail"]
    assert Product.objects.get(pk=product.pk).review_status == ReviewStatus.UNREVIEWED


def test_submit_400_on_a_malformed_body(operator_api):
    (product,) = products_create(1)
    response = operator_api.post(
        f"/api/v1/products/{product.external_id}/review/", {"tags": "Red"}, format="json"
    )
    assert response.status_code == 400
    assert "tags" in response.json()["fields"]
    response = operator_api.post(f"/api/v1/products/{product.external_id}/review/", {}, format="json")
    assert response.status_code == 400


def test_submit_404_for_an_unknown_product(operator_api):
    response = operator_api.post("/api/v1/products/NOPE/review/", {"tags": []}, format="json")
    assert response.status_code == 404


def test_external_ids_with_slashes_are_addressable(operator_api):
    product = Product.objects.create(external_id="shop/EU/123", title="Slashed")
    response = operator_api.post("/api/v1/products/shop/EU/123/review/", {"tags": []}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["product"] == product.external_id


def test_release_returns_the_product_to_the_queue(operator_api, other_api):
    (product,) = products_create(1)
    operator_api.post("/api/v1/review/next/")

    assert other_api.post(f"/api/v1/products/{product.external_id}/release/").status_code == 409
    response = operator_api.post(f"/api/v1/products/{product.external_id}/release/")
    assert response.status_code == 200
    assert response.json() == {"product": product.external_id, "released": True}
    assert other_api.post("/api/v1/review/next/").json()["product"]["external_id"] == product.external_id


def test_undo_over_the_api(operator_api):
    (product,) = products_create(1)
    TagFactory(name="Red")
    operator_api.post(f"/api/v1/products/{product.external_id}/review/", {"tags": ["Red"]}, format="json")

    response = operator_api.post("/api/v1/review/undo/")

    assert response.status_code == 200, response.content
    assert response.json()["review_status"] == "unreviewed"
    assert operator_api.post("/api/v1/review/undo/").status_code == 409


def test_review_api_needs_a_role_and_credentials():
    (product,) = products_create(1)
    anonymous = APIClient()
    assert anonymous.post("/api/v1/review/next/").status_code == 401
    nobody = get_user_model().objects.create_user("nobody", password="x")
    client = APIClient()
    client.force_authenticate(nobody)
    assert client.post("/api/v1/review/next/").status_code == 403
    assert (
        client.post(
            f"/api/v1/products/{product.external_id}/review/", {"tags": []}, format="json"
        ).status_code
        == 403
    )


def test_session_requests_need_the_csrf_token(operator):
    products_create(1)
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="olivia", password="operator-pass-123")
    response = client.post("/api/v1/review/next/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
