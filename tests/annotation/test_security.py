"""Security properties: CSRF on session writes, no user enumeration at login, hashed passwords, and
production settings that pass Django's deployment checks."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from annotation.roles import OPERATOR
from annotation.services.users import user_create
from tests.factories import AdminFactory, OperatorFactory

pytestmark = pytest.mark.usefixtures("empty_cache")

REPO_ROOT = settings.BASE_DIR


# --- CSRF -----------------------------------------------------------------------------------------------


@pytest.fixture
def admin_session(db):
    user = AdminFactory(username="csrf-admin", password="a-long-enough-passphrase")
    token = user.auth_token.key
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client, token


def test_session_writes_need_the_csrf_token(admin_session):
    client, _ = admin_session
    refused = client.post("/api/v1/tags/", {"name": "Linen"}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied" and "CSRF" in refused.json()["detail"]
    client.get("/login/")  # any page that renders a form sets the CSRF cookie
    page = client.get("/exports/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    accepted = client.post(
        "/api/v1/tags/", {"name": "Linen"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201


def test_session_reads_do_not_need_it(admin_session):
    client, _ = admin_session
    assert client.get("/api/v1/tags/").status_code == 200


def test_token_requests_are_not_subject_to_csrf(admin_session):
    _, key = admin_session
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/v1/tags/", {"name": "Wool"}, format="json").status_code == 201


def test_html_forms_need_the_csrf_token(admin_session):
    client, _ = admin_session
    assert client.post("/exports/", {"file_format": "jsonl"}).status_code == 403
    assert client.post("/logout/").status_code == 403


# --- login ----------------------------------------------------------------------------------------------


def _without_tokens(html: bytes) -> bytes:
    """The page minus its per-request CSRF tokens (form field and htmx header)."""
    html = re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", html)
    return re.sub(rb'"X-CSRFToken": "[^"]+"', b"", html)


def test_login_does_not_reveal_whether_a_user_exists(db):
    user_create(username="known", password="a-long-enough-passphrase", role=OPERATOR, validate=False)
    unknown = Client().post("/login/", {"username": "nobody-here", "password": "whatever-123"})
    wrong = Client().post("/login/", {"username": "known", "password": "whatever-123"})
    assert unknown.status_code == wrong.status_code == 200
    assert _without_tokens(unknown.content) == _without_tokens(wrong.content).replace(
        b"known", b"nobody-here"
    )
    right = Client().post("/login/", {"username": "known", "password": "a-long-enough-passphrase"})
    assert right.status_code == 302


def test_inactive_user_gets_the_same_answer(db):
    user, _ = user_create(username="gone", password="a-long-enough-passphrase", role=OPERATOR, validate=False)
    user.is_active = False
    user.save()
    inactive = Client().post("/login/", {"username": "gone", "password": "a-long-enough-passphrase"})
    unknown = Client().post("/login/", {"username": "gone", "password": "not-the-password"})
    assert _without_tokens(inactive.content) == _without_tokens(unknown.content)


# --- passwords and tokens ----------------------------------------------------------------------------------


def test_passwords_are_stored_hashed(db):
    user, _ = user_create(username="hashy", password="a-long-enough-passphrase", role=OPERATOR)
    stored = get_user_model().objects.get(pk=user.pk).password
    assert "a-long-enough-passphrase" not in stored
    assert stored.split("$", 1)[0] in {"pbkdf2_sha256", "argon2", "bcrypt_sha256", "scrypt"}
    assert user.check_password("a-long-enough-passphrase")


def test_the_api_never_shows_password_hashes(admin_api, admin_user):
    body = json.dumps([admin_api.get("/api/v1/users/").json(), admin_api.get("/api/v1/me/").json()])
    assert "pbkdf2" not in body and "password" not in body


def test_rate_limit_cache_keys_do_not_contain_tokens(db):
    key = OperatorFactory(username="cachey").auth_token.key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/me/").status_code == 200
    keys = _stored_cache_keys()
    assert keys and not any(key in stored for stored in keys)


def _stored_cache_keys() -> list[str]:
    """Every key in the default cache as stored (Redis in the test settings, or local memory)."""
    if isinstance(getattr(cache, "_cache", None), dict):
        return list(cache._cache.keys())
    client = cache._cache.get_client()
    return [key.decode() for key in client.keys("*")]


# --- production settings -----------------------------------------------------------------------------------


def production_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tagstudio.settings",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tagstudio",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
        "ALLOWED_HOSTS": "tagstudio.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_PRELOAD": "1",
        "TAGSTUDIO_VAR_DIR": str(tmp_path / "var"),
    }
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_production_defaults_are_safe(tmp_path):
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k)"
        " for k in ['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY',"
        " 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT',"
        " 'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS']}))"
    )
    result = run_python(code, production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
    }


@pytest.mark.slow
def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0 and "SECRET_KEY is required" in result.stderr
