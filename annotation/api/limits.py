"""Request limits of the API: a rate per token (or session), a limit on failed tokens, a cap on body size.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (env ``API_RATE_LIMIT_USER`` /
``API_RATE_LIMIT_ANON``) and are read per request, so a settings change applies without a restart of the
throttle classes. Bodies: JSON and form bodies above ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and multipart uploads
above ``TAGSTUDIO_MAX_UPLOAD_BYTES`` get 413 from the declared ``Content-Length``, before a byte is read;
a JSON body nested deeper than ``JSON_MAX_DEPTH`` gets 400 (``parse_error``).
Failed tokens: an address whose tokens failed ``API_TOKEN_FAILURE_LIMIT`` times within
``API_TOKEN_FAILURE_WINDOW_SECONDS`` gets 429 (with ``Retry-After``) for any token until the window passes.
Every counter lives in the default cache, which is shared by all processes (see ``CACHES`` in settings).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

security_log = logging.getLogger("annotation.security")

# Arrays and objects inside each other in one JSON body. No API body needs more than a few levels; a
# body nested 100,000 deep made the decoder (or the serializer after it) raise RecursionError, a 500.
JSON_MAX_DEPTH = 32


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)


class TokenRateThrottle(_SettingsRateThrottle):
    """Authenticated requests: one bucket per API token (per user for session logins)."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        if isinstance(request.auth, Token):
            # Never put the key itself in the cache: a shared cache must not leak credentials.
            ident = "t" + hashlib.sha256(request.auth.key.encode()).hexdigest()[:32]
        else:
            ident = f"u{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonymousRateThrottle(_SettingsRateThrottle):
    """Anonymous requests (the schema, the docs): one bucket per client address."""

    scope = "anon"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class FailedTokenAttempts:
    """Failed token authentications of one client address in a sliding window, kept in the shared cache."""

    cache_format = "token-failures:%s"

    def __init__(self, request: Request) -> None:
        self.address = BaseThrottle().get_ident(request)
        self.key = self.cache_format % self.address
        self.limit = int(settings.API_TOKEN_FAILURE_LIMIT)
        self.window = int(settings.API_TOKEN_FAILURE_WINDOW_SECONDS)

    def _recent(self, now: float) -> list[float]:
        return [moment for moment in cache.get(self.key, []) if moment > now - self.window]

    def wait(self) -> float | None:
        """Seconds until this address may try a token again; None while it is under the limit."""
        if self.limit <= 0:  # 0 turns the limit off
            return None
        now = time.time()
        recent = self._recent(now)
        if len(recent) < self.limit:
            return None
        # Blocked until the limit-th most recent failure leaves the window.
        return max(1.0, sorted(recent)[-self.limit] + self.window - now)

    def record_failure(self) -> None:
        if self.limit <= 0:
            return
        now = time.time()
        recent = self._recent(now)
        recent.append(now)
        cache.set(self.key, recent[-self.limit :], self.window)
        if len(recent) >= self.limit:
            security_log.warning(
                "API token authentication from %s blocked for %ss after %d failed tokens within %ss",
                self.address,
                self.window,
                len(recent),
                self.window,
            )
        else:
            security_log.warning(
                "failed API token authentication from %s (%d of %d within %ss)",
                self.address,
                len(recent),
                self.limit,
                self.window,
            )


class FailureLimitedTokenAuthentication(TokenAuthentication):
    """DRF token authentication with a limit on failures per client address (429 once it is reached).

    A blocked address gets 429 for a valid token too: answering it would tell a guesser which guess is
    right. Requests without a token, and session logins, are not affected.
    """

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        attempts = FailedTokenAttempts(request)
        wait = attempts.wait()
        if wait is not None:
            raise exceptions.Throttled(
                wait=wait, detail="Too many failed token authentications from this address."
            )
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            attempts.record_failure()
            raise


class _BodyLimit:
    limit_setting = "DATA_UPLOAD_MAX_MEMORY_SIZE"

    def parse(self, stream, media_type=None, parser_context=None):
        # At call time: DRF imports this module (an authentication class) while rest_framework.views is
        # half-imported, and annotation.api.errors imports rest_framework.views.
        from annotation.api.errors import PayloadTooLarge

        request = (parser_context or {}).get("request")
        limit = getattr(settings, self.limit_setting)
        if request is not None and limit is not None:
            meta = request.META
            try:
                length = int(meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                raise PayloadTooLarge(f"The request body is {length} bytes; the limit is {limit} bytes.")
        return super().parse(stream, media_type, parser_context)


def _json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` has arrays/objects nested more than ``limit`` deep (iterative: no recursion)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class LimitedJSONParser(_BodyLimit, JSONParser):
    """JSON within the body limit and at most ``JSON_MAX_DEPTH`` arrays/objects deep (400 beyond)."""

    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = f"JSON parse error - the body is nested deeper than {JSON_MAX_DEPTH} levels."
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(too_deep) from None
        if _json_depth_exceeds(data, JSON_MAX_DEPTH):
            raise exceptions.ParseError(too_deep)
        return data


class LimitedFormParser(_BodyLimit, FormParser):
    pass


class LimitedMultiPartParser(_BodyLimit, MultiPartParser):
    limit_setting = "TAGSTUDIO_MAX_UPLOAD_BYTES"
