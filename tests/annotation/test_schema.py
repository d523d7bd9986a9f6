"""The OpenAPI schema is the API's contract: valid, warning-free, and covering every /api/v1/ route."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from annotation.selectors.search import SEARCH_ORDERS

pytestmark = pytest.mark.django_db


def _openapi_path(route: str) -> str:
    """``<int:pk>`` and ``(?P<name>…)`` (balanced parentheses) become ``{pk}`` / ``{name}``."""
    out, i = [], 0
    while i < len(route):
        if route.startswith("(?P<", i):
            name_end = route.index(">", i)
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(route[j], 0) if route[j - 1] != "\\" else 0
                j += 1
                if depth == 0:
                    break
            out.append("{" + route[i + 4 : name_end] + "}")
            i = j
        else:
            out.append(route[i])
            i += 1
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", "".join(out))


def _api_routes(patterns=None, prefix: str = "") -> list[str]:
    """Every /api/v1/ route as an OpenAPI-style path (``{name}`` for each parameter)."""
    routes: list[str] = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        text = str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            routes.extend(_api_routes(pattern.url_patterns, prefix + text))
        elif isinstance(pattern, URLPattern) and (prefix + text).startswith("api/v1/"):
            routes.append("/" + _openapi_path(prefix + text))
    return routes


@pytest.fixture(scope="module")
def schema(django_db_blocker, tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    return yaml.safe_load(target.read_text())


def test_schema_is_valid_and_warning_free(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["paths"]


def test_every_api_route_is_documented(schema):
    documented = {re.sub(r"{\w+}", "{}", path) for path in schema["paths"]}
    missing = [route for route in _api_routes() if re.sub(r"{\w+}", "{}", route) not in documented]
    assert not missing, f"routes without an OpenAPI operation: {missing}"


def test_every_operation_documents_its_errors(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, f"{method.upper()} {path} documents no success response"
            for code in ("401", "403", "429"):
                assert code in responses, f"{method.upper()} {path} lacks {code}"
                content = responses[code]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}
            if "{" in path:
                assert "404" in responses, f"{method.upper()} {path} lacks 404"
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), f"{method.upper()} {path} lacks 400/413"
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail", "fields"}


def test_export_documents_its_formats_and_high_water_mark(schema):
    operation = schema["paths"]["/api/v1/export/approved-tags/"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/x-ndjson",
        "text/csv",
        "application/json",
    }
    assert "X-High-Water-Mark" in operation["responses"]["200"]["headers"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["format"]["schema"]["enum"] == ["jsonl", "csv", "json"]
    assert params["updated_since"]["schema"]["format"] == "date-time"


def test_schema_and_docs_are_public():
    client = APIClient()
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_review_card_suggestions_document_a_nullable_reason(schema):
    components = schema["components"]["schemas"]
    card = schema["paths"]["/api/v1/review/next/"]["post"]["responses"]["200"]["content"]["application/json"]
    assert card["schema"] == {"$ref": "#/components/schemas/ReviewCard"}
    suggestion = components["SuggestionOut"]
    assert "reason" in suggestion["required"]
    reason = suggestion["properties"]["reason"]
    assert (
        reason["nullable"] is True and "Null while the model version is not loaded" in reason["description"]
    )
    assert reason["allOf"] == [{"$ref": "#/components/schemas/SuggestionReason"}]
    fields = components["SuggestionReason"]
    assert set(fields["required"]) == {"summary", "title_mentions", "neighbours", "words"}
    assert fields["properties"]["title_mentions"]["items"] == {"$ref": "#/components/schemas/TitleMention"}
    assert fields["properties"]["words"]["items"]["type"] == "string"
    mention = components["TitleMention"]["properties"]
    assert (mention["start"]["type"], mention["end"]["type"], mention["text"]["type"]) == (
        "integer",
        "integer",
        "string",
    )


def test_product_list_documents_the_catalog_search(schema):
    operation = schema["paths"]["/api/v1/products/"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    for name in (
        "status", "tag", "q", "updated_since", "suggested_tag", "min_score", "max_score", "disagreement",
        "category", "model_version", "ordering", "cursor", "page_size",
    ):  # fmt: skip
        assert name in params and params[name].get("description"), name
    assert params["min_score"]["schema"]["type"] == "number"
    assert params["disagreement"]["schema"]["type"] == "boolean"
    assert sorted(params["ordering"]["schema"]["enum"]) == sorted(SEARCH_ORDERS)
    assert "400" in operation["responses"]
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    page_schema = schema["components"]["schemas"][page]
    assert {"count", "count_is_estimate"} <= set(page_schema["required"])
    assert page_schema["properties"]["count_is_estimate"]["type"] == "boolean"


def test_bulk_review_endpoints_are_documented(schema):
    candidates = schema["paths"]["/api/v1/tags/{id}/candidates/"]["get"]
    params = {p["name"] for p in candidates["parameters"]}
    assert {"min_score", "max_score", "status", "q", "order", "cursor", "category", "disagreement"} <= params
    bulk = schema["paths"]["/api/v1/tags/{id}/bulk-review/"]["post"]
    assert {"200", "202", "400"} <= set(bulk["responses"])
    body = schema["components"]["schemas"]["BulkReviewRequest"]["properties"]
    assert {"accept", "reject", "accept_filter", "reject_filter"} <= set(body)
    assert "/api/v1/bulk-actions/{id}/undo/" in schema["paths"]
