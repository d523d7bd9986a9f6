"""Brute-force protection: repeated wrong passwords lock the login (by user and by address), repeated
invalid API tokens from one address get 429, both are logged, and an admin can unlock.

Against the real PostgreSQL (login attempts are django-axes rows) and, for the token counter, both
shared caches: the database cache table (no CACHE_URL) and Redis (docker-compose).
"""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from annotation.roles import ADMIN, OPERATOR
from annotation.services.users import user_create

PASSWORD = "the-right-passphrase-42"
LIMIT = 5  # failures before a lockout in these tests (the deployment default is AXES_FAILURE_LIMIT)
REDIS_CACHE_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.API_TOKEN_FAILURE_LIMIT = LIMIT
    settings.API_TOKEN_FAILURE_WINDOW_SECONDS = 300
    cache.clear()


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _fail_logins(url: str, username: str, times: int, address: str = "127.0.0.1") -> list[int]:
    client = Client(REMOTE_ADDR=address)
    return [
        client.post(url, {"username": username, "password": f"wrong-{attempt}"}).status_code
        for attempt in range(times)
    ]


# --- login page and admin login -------------------------------------------------------------------------


def test_wrong_passwords_then_the_right_one_is_locked_out(db):
    user_create(username="victim", password=PASSWORD, role=OPERATOR, validate=False)
    statuses = _fail_logins("/login/", "victim", LIMIT + 3)
    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, with its error
    assert statuses[-1] == 429
    client = Client()
    right = client.post("/login/", {"username": "victim", "password": PASSWORD})
    assert right.status_code == 429
    assert b"locked" in right.content.lower()
    assert not _logged_in(client)


def test_admin_login_locks_out_too(db):
    user, _ = user_create(username="root", password=PASSWORD, role=ADMIN, validate=False)
    user.is_staff = True
    user.save()
    statuses = _fail_logins("/admin/login/", "root", LIMIT + 2)
    assert statuses[-1] == 429
    client = Client()
    right = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert right.status_code == 429
    assert not _logged_in(client)


def test_one_address_trying_many_users_is_locked_out(db):
    user_create(username="bystander", password=PASSWORD, role=OPERATOR, validate=False)
    client = Client(REMOTE_ADDR="203.0.113.7")
    for attempt in range(LIMIT):
        client.post("/login/", {"username": f"guess-{attempt}", "password": "wrong-password"})
    locked = client.post("/login/", {"username": "bystander", "password": PASSWORD})
    assert locked.status_code == 429
    assert not _logged_in(client)
    # The user was not the target: from another address they still log in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert elsewhere.post("/login/", {"username": "bystander", "password": PASSWORD}).status_code == 302


def test_one_user_tried_from_many_addresses_is_locked_out(db):
    user_create(username="target", password=PASSWORD, role=OPERATOR, validate=False)
    for attempt in range(LIMIT):
        _fail_logins("/login/", "target", 1, address=f"192.0.2.{attempt + 1}")
    client = Client(REMOTE_ADDR="198.51.100.99")
    assert client.post("/login/", {"username": "target", "password": PASSWORD}).status_code == 429
    assert not _logged_in(client)


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(db):
    """Without trusted proxies (TRUSTED_PROXY_COUNT=0) X-Forwarded-For is the client's own word."""
    user_create(username="spoofed", password=PASSWORD, role=OPERATOR, validate=False)
    client = Client()
    for attempt in range(LIMIT):
        client.post(
            "/login/",
            {"username": f"other-{attempt}", "password": "wrong-password"},
            HTTP_X_FORWARDED_FOR=f"10.9.8.{attempt}",
        )
    forged = {"HTTP_X_FORWARDED_FOR": "10.9.8.200"}
    assert client.post("/login/", {"username": "spoofed", "password": PASSWORD}, **forged).status_code == 429


def test_failures_below_the_limit_do_not_lock(db):
    user_create(username="typo", password=PASSWORD, role=OPERATOR, validate=False)
    _fail_logins("/login/", "typo", LIMIT - 1)
    client = Client()
    assert client.post("/login/", {"username": "typo", "password": PASSWORD}).status_code == 302
    assert _logged_in(client)


def test_an_admin_unlocks_with_axes_reset(db):
    user_create(username="unlucky", password=PASSWORD, role=OPERATOR, validate=False)
    _fail_logins("/login/", "unlucky", LIMIT)
    assert Client().post("/login/", {"username": "unlucky", "password": PASSWORD}).status_code == 429
    call_command("axes_reset_username", "unlucky")
    client = Client()
    assert client.post("/login/", {"username": "unlucky", "password": PASSWORD}).status_code == 302
    assert _logged_in(client)


def test_admins_see_the_attempts_in_the_admin(db):
    admin, _ = user_create(username="boss", password=PASSWORD, role=ADMIN, validate=False)
    admin.is_staff = admin.is_superuser = True
    admin.save()
    _fail_logins("/login/", "someone", LIMIT)
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert b"someone" in page.content


def test_lockouts_are_logged(db, caplog):
    with caplog.at_level(logging.WARNING):
        _fail_logins("/login/", "logged-victim", LIMIT + 1)
    assert any("locking out" in record.getMessage().lower() for record in caplog.records)


def test_request_less_authentication_still_works(db):
    """``Client.login`` (and code outside a request) calls ``authenticate`` without a request."""
    user_create(username="scripted", password=PASSWORD, role=OPERATOR, validate=False)
    assert Client().login(username="scripted", password=PASSWORD)
    assert not Client().login(username="scripted", password="wrong-password")
    assert get_user_model().objects.filter(username="scripted").exists()


# --- API tokens ------------------------------------------------------------------------------------------


@pytest.fixture(params=["database-cache", "redis-cache"])
def shared_cache(request, db, settings):
    """Each deployment's shared cache: the database table (no CACHE_URL) and Redis (compose)."""
    if request.param == "redis-cache":
        redis.Redis.from_url(REDIS_CACHE_URL).flushdb()
        backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}
    else:
        backend = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": settings.CACHE_TABLE}
    settings.CACHES = {"default": backend}
    cache.clear()
    yield request.param
    cache.clear()


def _token_client(key: str, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_bad_tokens_from_one_address_get_429(db, shared_cache):
    answers = [_token_client(f"{attempt:040x}").get("/api/v1/me/") for attempt in range(LIMIT + 5)]
    assert [answer.status_code for answer in answers[:LIMIT]] == [401] * LIMIT
    limited = answers[LIMIT:]
    assert {answer.status_code for answer in limited} == {429}
    body = limited[-1].json()
    assert body["error"] == "throttled" and set(body) == {"error", "detail", "fields"}
    assert 0 < int(limited[-1]["Retry-After"]) <= 300


def test_a_blocked_address_cannot_use_a_good_token_but_others_can(db, shared_cache):
    _, key = user_create(username="api-user", password=PASSWORD, role=OPERATOR, validate=False)
    for attempt in range(LIMIT):
        _token_client(f"bad{attempt:037x}", "203.0.113.50").get("/api/v1/me/")
    # Answering 200 to a good token here would tell the guesser which of its guesses is right.
    assert _token_client(key, "203.0.113.50").get("/api/v1/me/").status_code == 429
    assert _token_client(key, "198.51.100.1").get("/api/v1/me/").status_code == 200
    assert _token_client("not-a-token", "198.51.100.1").get("/api/v1/me/").status_code == 401


def test_a_forged_forwarded_for_header_does_not_escape_the_token_block(db):
    for attempt in range(LIMIT):
        _token_client(f"bad{attempt:037x}").get("/api/v1/me/", HTTP_X_FORWARDED_FOR=f"10.1.1.{attempt}")
    assert _token_client("f" * 40).get("/api/v1/me/", HTTP_X_FORWARDED_FOR="10.1.1.99").status_code == 429


def test_the_block_ends_with_the_window(db, settings, shared_cache):
    settings.API_TOKEN_FAILURE_WINDOW_SECONDS = 2
    _, key = user_create(username="patient", password=PASSWORD, role=OPERATOR, validate=False)
    for attempt in range(LIMIT):
        _token_client(f"bad{attempt:037x}").get("/api/v1/me/")
    assert _token_client(key).get("/api/v1/me/").status_code == 429
    time.sleep(2.2)
    assert _token_client(key).get("/api/v1/me/").status_code == 200


def test_token_failures_are_logged_without_the_token(db, caplog):
    secret_guess = "f" * 40
    with caplog.at_level(logging.WARNING):
        for _ in range(LIMIT + 1):
            _token_client(secret_guess, "203.0.113.77").get("/api/v1/me/")
    messages = [record.getMessage() for record in caplog.records if record.name == "annotation.security"]
    assert any("203.0.113.77" in message and "blocked" in message for message in messages)
    assert not any(secret_guess in message for message in messages)
