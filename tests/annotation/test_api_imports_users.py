"""Imports, users and tokens over REST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotation.models import ImportJob, Product
from annotation.services.imports import import_job_run
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db

CATALOG = "\n".join(
    json.dumps(row)
    for row in [
        {"id": "i1", "title": "Linen shirt", "tags": ["Shirts", "Linen"], "lang": "en"},
        {"id": "i2", "title": "连衣裙", "tags": ["Dress"], "lang": "zh"},
        {"id": "", "title": "no id"},
    ]
).encode()


def upload(name: str, content: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def import_files() -> list[Path]:
    directory = Path(settings.IMPORT_DIR)
    return sorted(directory.iterdir()) if directory.exists() else []


def test_upload_starts_a_job_and_reports_rows(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_api.post(
            "/api/v1/imports/", {"file": upload("catalog.jsonl", CATALOG)}, format="multipart"
        )
    assert response.status_code == 202, response.content
    assert len(callbacks) == 1  # the task is enqueued once the job row is committed
    job = response.json()
    assert (job["status"], job["file_format"], job["source_name"]) == ("queued", "jsonl", "catalog.jsonl")

    import_job_run(job["id"])
    detail = admin_api.get(f"/api/v1/imports/{job['id']}/").json()
    assert (detail["status"], detail["rows_ok"], detail["rows_rejected"]) == ("succeeded", 2, 1)
    assert detail["errors"][0]["line"] == 3 and detail["errors"][0]["field"] == "id"
    assert Product.objects.count() == 2
    assert [j["id"] for j in admin_api.get("/api/v1/imports/").json()["results"]] == [job["id"]]


def test_csv_upload_is_accepted(admin_api):
    response = admin_api.post(
        "/api/v1/imports/",
        {"file": upload("c.csv", b"id,title\nc1,Shirt\n"), "ignore_tags": "true"},
        format="multipart",
    )
    assert response.status_code == 202 and response.json()["file_format"] == "csv"
    assert response.json()["ignore_tags"] is True


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("notes.txt", b"just some words\nand more"),
        ("e.jsonl", b""),
    ],
)
def test_not_a_catalog_is_400_and_nothing_is_written(admin_api, name, content):
    before = import_files()
    response = admin_api.post("/api/v1/imports/", {"file": upload(name, content)}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]
    assert not ImportJob.objects.exists()
    assert import_files() == before


def test_missing_file_is_400(admin_api):
    response = admin_api.post("/api/v1/imports/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]


def test_upload_over_the_limit_is_413_before_reading(admin_api, settings):
    settings.TAGSTUDIO_MAX_UPLOAD_BYTES = 1024
    before = import_files()
    response = admin_api.post(
        "/api/v1/imports/", {"file": upload("big.jsonl", CATALOG * 20)}, format="multipart"
    )
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert not ImportJob.objects.exists() and import_files() == before


def test_operators_cannot_import(operator_api):
    response = operator_api.post("/api/v1/imports/", {"file": upload("c.jsonl", CATALOG)}, format="multipart")
    assert response.status_code == 403


# --- users and tokens ------------------------------------------------------------------------------------


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_me_and_own_token_rotation():
    key = OperatorFactory(username="olga").auth_token.key
    client = token_client(key)
    me = client.get("/api/v1/me/").json()
    assert (me["username"], me["role"], me["has_token"]) == ("olga", "operator", True)
    new_key = client.post("/api/v1/me/token/").json()["token"]
    assert new_key != key
    assert client.get("/api/v1/me/").status_code == 401  # the old token stopped working at once
    assert token_client(new_key).get("/api/v1/me/").status_code == 200


def test_admin_creates_lists_and_revokes(admin_api):
    created = admin_api.post(
        "/api/v1/users/",
        {"username": "newbie", "password": "a-long-enough-passphrase", "role": "operator"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["role"] == "operator" and "password" not in body
    user = get_user_model().objects.get(username="newbie")
    assert user.password.startswith("pbkdf2_") and user.check_password("a-long-enough-passphrase")
    assert token_client(body["token"]).get("/api/v1/products/").status_code == 200

    listed = admin_api.get("/api/v1/users/").json()["results"]
    assert [(u["username"], u["role"]) for u in listed] == [("adam", "admin"), ("newbie", "operator")]

    assert admin_api.delete(f"/api/v1/users/{user.pk}/token/").status_code == 204
    assert token_client(body["token"]).get("/api/v1/products/").status_code == 401
    assert admin_api.delete("/api/v1/users/999999/token/").status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"username": "adam", "password": "a-long-enough-passphrase", "role": "operator"}, 409, "username"),
        ({"username": "weak", "password": "123", "role": "operator"}, 400, "password"),
        (
            {"username": "bad name!", "password": "a-long-enough-passphrase", "role": "operator"},
            400,
            "username",
        ),
        ({"username": "x", "password": "a-long-enough-passphrase", "role": "root"}, 400, "role"),
    ],
)
def test_user_create_errors(admin_api, payload, status, field):
    response = admin_api.post("/api/v1/users/", payload, format="json")
    assert response.status_code == status and field in response.json()["fields"]


def test_operators_cannot_manage_users(operator_api, admin_user):
    assert operator_api.get("/api/v1/users/").status_code == 403
    assert operator_api.delete(f"/api/v1/users/{admin_user.pk}/token/").status_code == 403
