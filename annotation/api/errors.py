"""One JSON error shape for the whole API: {"error": code, "detail": text, "fields": {...}}.

``error`` is a stable machine-readable code (``invalid``, ``not_authenticated``, ``authentication_failed``,
``permission_denied``, ``not_found``, ``method_not_allowed``, ``conflict``, ``payload_too_large``,
``throttled``, ``parse_error``, ``unsupported_media_type``, ``broker_unavailable``, ``server_error``…);
``detail`` is a sentence for
people; ``fields`` maps request fields (or query parameters) to their messages and is ``{}`` when the
error is not about one field. Statuses: 400 bad input, 401 no/bad credentials (with
``WWW-Authenticate: Token``), 403 role or CSRF, 404, 405, 409 state conflict, 413 body too large,
429 rate limit (with ``Retry-After``), 503 when the job broker cannot take a message sent before anything
was written (with ``Retry-After``; work committed first is sent again by the job sweeper instead), 500 only
for bugs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from annotation.jobs import BrokerUnavailable

logger = logging.getLogger("annotation.api")


class Conflict(exceptions.APIException):
    """409: the request is valid but the resource's state does not allow it (raise with ``fields``)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is in a state that does not allow this request."
    default_code = "conflict"

    def __init__(self, detail: Any = None, code: str | None = None, fields: dict | None = None) -> None:
        super().__init__(detail, code)
        self.fields = fields or {}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The job broker is unavailable; nothing was changed. Try again shortly."
    default_code = "broker_unavailable"


class ErrorSerializer(serializers.Serializer):
    """The error body every API endpoint returns (documented once, referenced by every operation)."""

    error = serializers.CharField(
        help_text="Stable machine-readable code, e.g. invalid, not_found, conflict."
    )
    detail = serializers.CharField(help_text="Human-readable explanation.")
    fields = serializers.DictField(
        child=serializers.JSONField(),
        help_text="Messages per request field or query parameter; empty when not about one field.",
    )


def _first_message(detail: Any) -> str | None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _first_message(value)
            if message is not None:
                return message if key == "non_field_errors" else f"{key}: {message}"
        return None
    if isinstance(detail, list):
        for item in detail:
            message = _first_message(item)
            if message is not None:
                return message
        return None
    return str(detail)


def _as_drf(exc: Exception) -> Exception:
    """Map Django's own exceptions to their API equivalents."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, BrokerUnavailable):
        return ServiceUnavailable()
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError(exc.messages)
    return exc


def api_page_not_found(request, exception=None):
    """``handler404`` for the project: a path under /api/ that no route matches answers in the API's shape
    (clients and the schema's fuzzer get JSON, not an HTML page); other paths keep Django's page."""
    if request.path.startswith("/api/"):
        body = {"error": "not_found", "detail": "No API endpoint matches this path.", "fields": {}}
        return JsonResponse(body, status=status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _as_drf(exc)
    response = exception_handler(exc, context)
    if response is None:
        if settings.DEBUG:
            return None  # let Django show its debug page
        # A bug: log it with its traceback and still answer in the API's shape.
        logger.error("unhandled API error", exc_info=exc, extra={"request": context.get("request")})
        set_rollback()
        return Response(
            {"error": "server_error", "detail": "Internal server error.", "fields": {}},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {}
        body = {"error": "invalid", "detail": _first_message(detail) or "Invalid input.", "fields": fields}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        detail = getattr(exc, "detail", str(exc))
        body = {"error": code, "detail": _first_message(detail) or "", "fields": getattr(exc, "fields", {})}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF answers 403 when the first authentication class (session) has no challenge; the API's
        # contract is 401 + a Token challenge for missing or bad credentials.
        response.status_code = status.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = 'Token realm="api"'
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = "30"
    response.data = body
    return response
