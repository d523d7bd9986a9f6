"""OpenAPI conventions applied to every operation, so no endpoint can forget its error responses.

drf-spectacular documents what a view returns on success; this post-processing hook adds the error
responses that the API's conventions produce, all with the one error body (``Error``, see
``annotation.api.errors``): 401/403 for anything that is not public, 404 where the path names a resource,
400 where the client sends a body or query parameters, 413 where it sends a body, 429 everywhere
(rate limits). A view that declares one of these itself (e.g. a 409) keeps its own description.

``SchemaApi`` serves /api/schema/: drf-spectacular's view, one schema build at a time per process.
"""

from __future__ import annotations

import threading
from typing import Any

from drf_spectacular.views import SpectacularAPIView

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_COMPONENT = {
    "type": "object",
    "description": "The error body of every API error response.",
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code, e.g. invalid, not_found."},
        "detail": {"type": "string", "description": "Human-readable explanation."},
        "fields": {
            "type": "object",
            "additionalProperties": {},
            "description": "Messages per request field or query parameter; empty when not about one field.",
        },
    },
    "required": ["error", "detail", "fields"],
}
DESCRIPTIONS = {
    "400": "Invalid input: `fields` names each bad field or query parameter.",
    "401": "Missing or invalid credentials (session cookie or `Authorization: Token <key>`).",
    "403": "Authenticated, but the role does not allow this (or a session request lacks its CSRF token).",
    "404": "No such resource.",
    "413": "The request body is larger than the configured limit.",
    "429": "Rate limit reached; retry after the number of seconds in `Retry-After`.",
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _is_public(operation: dict[str, Any]) -> bool:
    # drf-spectacular lists ``{}`` among the security requirements of an AllowAny operation.
    return {} in operation.get("security", [{}])


def error_responses_hook(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_COMPONENT)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            parameters = operation.get("parameters", [])
            has_body = "requestBody" in operation
            codes = {"429"}
            if not _is_public(operation):
                codes |= {"401", "403"}
            if any(parameter.get("in") == "path" for parameter in parameters):
                codes.add("404")
            if has_body or any(parameter.get("in") == "query" for parameter in parameters):
                codes.add("400")
            if has_body:
                codes.add("413")
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses.setdefault(
                    code,
                    {
                        "description": DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    return result


# drf-spectacular loads its extensions lazily on the first build and that loading is not thread-safe:
# concurrent first requests to a threaded gunicorn worker answered 500 (AttributeError in
# drf_spectacular/plumbing.py, one thread reading what another had half-loaded).
_schema_build_lock = threading.Lock()


class SchemaApi(SpectacularAPIView):
    """/api/schema/: drf-spectacular's schema view, building under a per-process lock."""

    def _get_schema_response(self, request):
        with _schema_build_lock:
            return super()._get_schema_response(request)
