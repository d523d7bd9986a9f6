"""Request limits of the API: a rate per token (or session) and a cap on body size.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (env ``API_RATE_LIMIT_USER`` /
``API_RATE_LIMIT_ANON``) and are read per request, so a settings change applies without a restart of the
throttle classes. Bodies: JSON and form bodies above ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and multipart uploads
above ``TAGSTUDIO_MAX_UPLOAD_BYTES`` get 413 from the declared ``Content-Length``, before a byte is read.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.throttling import SimpleRateThrottle

from annotation.api.errors import PayloadTooLarge


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


class _BodyLimit:
    limit_setting = "DATA_UPLOAD_MAX_MEMORY_SIZE"

    def parse(self, stream, media_type=None, parser_context=None):
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


class LimitedJSONParser(_BodyLimit, JSONParser):
    pass


class LimitedFormParser(_BodyLimit, FormParser):
    pass


class LimitedMultiPartParser(_BodyLimit, MultiPartParser):
    limit_setting = "TAGSTUDIO_MAX_UPLOAD_BYTES"
