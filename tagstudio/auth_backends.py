"""Login lockout wiring for django-axes: its backend, tolerant of request-less calls, and the client address.

Every login form (the login page, the admin login) passes the request to ``authenticate``, so those are
counted and locked out. Calls without a request (``Client.login`` in tests, scripts) cannot be told
apart by address and are not web logins: they pass through to the model backend unchecked.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check (first in AUTHENTICATION_BACKENDS); never logs anyone in itself."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The client's address as the API's rate limits see it (REST_FRAMEWORK["NUM_PROXIES"]).

    django-axes stores it in an IP address column: a forwarded value that is not an address falls back
    to the connection's own.
    """
    address = BaseThrottle().get_ident(request)
    try:
        ipaddress.ip_address(address or "")
    except ValueError:
        return request.META.get("REMOTE_ADDR") or None
    return address
