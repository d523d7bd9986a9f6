"""Conventions every API endpoint shares: the error shape and statuses, keyset pagination, token auth,
per-token rate limits and body-size limits."""

from __future__ import annotations

import base64
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotation.models import Product
from tests.factories import OperatorFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["fields"], dict)
    return body


def test_anonymous_gets_401_with_a_token_challenge():
    response = APIClient().get("/api/v1/products/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")


def test_bad_token_gets_401():
    assert_error(token_client("0" * 40).get("/api/v1/products/"), 401, "authentication_failed")


def test_token_authentication_works():
    key = OperatorFactory(username="tok").auth_token.key
    assert token_client(key).get("/api/v1/products/").status_code == 200


def test_role_errors_are_403(operator_api):
    assert_error(operator_api.get("/api/v1/users/"), 403, "permission_denied")


def test_user_without_role_gets_403():
    from django.contrib.auth import get_user_model

    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("norole", password="x"))
    assert_error(client.get("/api/v1/products/"), 403, "permission_denied")


def test_not_found_and_method_not_allowed(operator_api):
    assert_error(operator_api.get("/api/v1/products/nope/"), 404, "not_found")
    assert_error(operator_api.delete("/api/v1/products/"), 405, "method_not_allowed")


def test_validation_errors_name_their_fields(admin_api):
    body = assert_error(admin_api.post("/api/v1/tags/", {"name": ""}, format="json"), 400, "invalid")
    assert "name" in body["fields"]
    assert body["detail"].startswith("name:")


def test_malformed_json_is_400(admin_api):
    response = admin_api.post("/api/v1/tags/", data="{nope", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_conflict_is_409_with_fields(admin_api):
    assert admin_api.post("/api/v1/tags/", {"name": "Dress"}, format="json").status_code == 201
    body = assert_error(admin_api.post("/api/v1/tags/", {"name": "dress"}, format="json"), 409, "conflict")
    assert "name" in body["fields"]


def test_json_body_over_the_limit_is_413_before_it_is_read(admin_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = admin_api.post("/api/v1/tags/", {"name": "x" * 2000}, format="json")
    assert_error(response, 413, "payload_too_large")


def test_rate_limit_is_per_token_with_retry_after(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "3/min"},
    }
    first, second = (OperatorFactory(username=name).auth_token.key for name in ("first", "second"))
    one, two = token_client(first), token_client(second)
    assert [one.get("/api/v1/products/").status_code for _ in range(3)] == [200, 200, 200]
    limited = one.get("/api/v1/products/")
    assert_error(limited, 429, "throttled")
    assert int(limited["Retry-After"]) > 0
    assert two.get("/api/v1/products/").status_code == 200  # another token has its own bucket


def test_anonymous_rate_limit(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100/min", "anon": "2/min"},
    }
    client = APIClient()
    assert [client.get("/api/schema/?format=json").status_code for _ in range(2)] == [200, 200]
    limited = client.get("/api/schema/?format=json")
    assert limited.status_code == 429
    assert json.loads(limited.content)["error"] == "throttled"


# --- keyset pagination -----------------------------------------------------------------------------------


@pytest.fixture
def many_products():
    Product.objects.bulk_create(Product(external_id=f"sku-{i:04d}", title=f"Product {i}") for i in range(130))
    return list(Product.objects.order_by("-id").values_list("external_id", flat=True))


def test_pages_walk_every_row_once_without_offset(operator_api, many_products):
    seen: list[str] = []
    url = "/api/v1/products/?page_size=50"
    with CaptureQueriesContext(connection) as queries:
        while url:
            body = operator_api.get(url).json()
            assert set(body) == {"count", "count_is_estimate", "next", "previous", "results"}
            assert (body["count"], body["count_is_estimate"]) == (130, False)
            seen.extend(item["external_id"] for item in body["results"])
            url = body["next"]
    assert seen == many_products
    page_queries = [q["sql"] for q in queries.captured_queries if 'FROM "annotation_product"' in q["sql"]]
    assert page_queries and not any("OFFSET" in sql for sql in page_queries)
    assert any('"annotation_product"."id" <' in sql for sql in page_queries)  # keyset condition


def test_previous_link_walks_back(operator_api, many_products):
    first = operator_api.get("/api/v1/products/?page_size=40").json()
    second = operator_api.get(first["next"]).json()
    back = operator_api.get(second["previous"]).json()
    assert back["results"] == first["results"]


def test_page_size_is_capped(operator_api, many_products, settings):
    settings.API_MAX_PAGE_SIZE = 25
    assert len(operator_api.get("/api/v1/products/?page_size=1000").json()["results"]) == 25


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_page_size_is_400(operator_api, value):
    body = assert_error(operator_api.get(f"/api/v1/products/?page_size={value}"), 400, "invalid")
    assert "page_size" in body["fields"]


@pytest.mark.parametrize(
    "cursor", ["garbage!", base64.b64encode(b"p=not-a-number").decode(), base64.b64encode(b"o=x").decode()]
)
def test_bad_cursor_is_400(operator_api, many_products, cursor):
    body = assert_error(operator_api.get("/api/v1/products/", {"cursor": cursor}), 400, "invalid")
    assert "cursor" in body["fields"]


def test_errors_are_json_even_for_the_export_format_parameter(admin_api):
    body = assert_error(admin_api.get("/api/v1/export/approved-tags/?format=xml"), 400, "invalid")
    assert "format" in body["fields"]
    assert json.loads(json.dumps(body))  # plain JSON, not a renderer-specific page


@pytest.mark.parametrize("path", ["/api/v1/no-such-resource/", "/api/v1/tags/abc/", "/api/v2/products/"])
def test_api_page_not_found_answers_json_under_api(client, settings, path):
    """A path under /api/ that no route matches answers in the API's error shape (the project's handler404,
    wired in tagstudio/urls.py); other paths keep Django's HTML page."""
    settings.DEBUG = False  # with DEBUG on, Django shows its technical 404 page instead of handler404
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "error": "not_found",
        "detail": "No API endpoint matches this path.",
        "fields": {},
    }
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
