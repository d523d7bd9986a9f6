"""The import_products command: messages, exit status, and the embedded SQLite mode end to end."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from annotation.models import ImportJob, JobStatus, Product, ProductTag, Tag
from annotation.services.imports import import_job_create, import_job_run
from tests.conftest import REPO_ROOT
from tests.factories import catalog_jsonl_write

GOOD = [
    {"id": "sku-1", "title": "Red cotton T-shirt", "tags": ["Apparel", "Red"], "lang": "en"},
    {"id": "zh-1", "title": "北京搬家公司长途搬家", "tags": ["品类:搬家"], "lang": "zh"},
    {"id": 77, "title": "Numeric SKU"},
]
BAD_LINES = [
    '{"id": "sku-1", "title": "Red cotton T-shirt", "tags": ["Apparel", "Red"]}',
    '{"id": "bad-1", "title": 42}',
    '{"id": "sku-2", "title": "Blue jeans"}',
    '{"id": "bad-2", "title": "broken',
]


def run_command(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_products", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_clean_file_imports_and_reports_counts(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", GOOD)
    out, err = run_command(str(path))
    assert out.strip() == "3 rows imported (3 new, 0 updated, 0 unchanged), 3 tags approved, 0 rows rejected."
    assert err == ""
    out, _ = run_command(str(path))
    assert "(0 new, 0 updated, 3 unchanged), 0 tags approved" in out


@pytest.mark.django_db
def test_rejected_rows_are_listed_and_the_exit_status_is_1(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", BAD_LINES)
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 rows rejected") as caught:
        call_command("import_products", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert caught.value.returncode == 1
    assert f"{path}:line 2: title: must be a string, got number" in err.getvalue()
    assert f"{path}:line 4: (line): malformed JSON" in err.getvalue()
    assert set(Product.objects.values_list("external_id", flat=True)) == {"sku-1", "sku-2"}


@pytest.mark.django_db
def test_ignore_tags_option(tmp_path):
    out, _ = run_command(str(catalog_jsonl_write(tmp_path / "c.jsonl", GOOD)), "--ignore-tags")
    assert "0 tags approved" in out
    assert Product.objects.count() == 3 and not ProductTag.objects.exists() and not Tag.objects.exists()


@pytest.mark.django_db
def test_a_file_that_is_not_a_catalog_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "photo.jsonl"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(200))
    with pytest.raises(CommandError, match="binary file.*Nothing was imported"):
        run_command(str(path))
    headerless = catalog_jsonl_write(tmp_path / "c.csv", ["sku-1,Red shirt,Acme"])
    with pytest.raises(CommandError, match="lacks the column"):
        run_command(str(headerless))
    with pytest.raises(CommandError, match="no such file"):
        run_command(str(tmp_path / "missing.jsonl"))
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_import_job_records_counts_and_errors(tmp_path, admin_user):
    path = catalog_jsonl_write(tmp_path / "upload.jsonl", BAD_LINES)
    with path.open("rb") as upload:
        job = import_job_create(source=upload, filename="upload.jsonl", user=admin_user)
    assert job.status == JobStatus.QUEUED and job.file_format == "jsonl"
    job = import_job_run(job.id)
    assert job.status == JobStatus.SUCCEEDED
    assert (job.rows_total, job.rows_ok, job.rows_rejected, job.products_created) == (4, 2, 2, 2)
    assert job.errors[0] == {"line": 2, "field": "title", "reason": "must be a string, got number"}
    assert job.errors[1]["line"] == 4 and job.errors[1]["field"] == "(line)"
    # A duplicate delivery finds the job done and runs nothing.
    assert import_job_run(job.id).finished_at == job.finished_at


@pytest.mark.django_db
def test_import_job_refuses_a_binary_upload_at_once(tmp_path):
    from annotation.io.readers import FileFormatError

    with pytest.raises(FileFormatError):
        import_job_create(source=io.BytesIO(b"PK\x03\x04\x00\x00" + bytes(100)), filename="catalog.zip")
    assert not ImportJob.objects.exists()


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_command_exit_status_in_a_real_process(tmp_path):
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tagstudio.settings"}
    bad = _manage(
        "import_products",
        str(catalog_jsonl_write(tmp_path / "bad.jsonl", BAD_LINES)),
        "--no-progress",
        env=env,
    )
    assert bad.returncode == 1, bad.stderr
    assert "line 2: title: must be a string, got number" in bad.stderr
    good = _manage(
        "import_products", str(catalog_jsonl_write(tmp_path / "good.jsonl", GOOD)), "--no-progress", env=env
    )
    assert good.returncode == 0, good.stderr
    assert Product.objects.count() == 4  # sku-1 is in both files


# Runs in a separate interpreter on a SQLite database (one Django start-up for all the steps).
_EMBEDDED_SCRIPT = """
import io, json, sys
import django
django.setup()
from django.core.management import CommandError, call_command

def run(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code, err = exc.returncode, io.StringIO(err.getvalue() + str(exc))
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}

call_command("migrate", verbosity=0)
steps = [run(*json.loads(arg)) for arg in sys.argv[1:]]
print(json.dumps(steps))
"""


@pytest.mark.slow
def test_embedded_sqlite_mode_imports_with_the_generic_writer(tmp_path):
    """The embedded mode's database: migrate a SQLite file, load tags, import, re-import, change a row."""
    database = tmp_path / "embedded.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "tagstudio.settings",
        "CELERY_BROKER_URL": "",
    }
    taxonomy = tmp_path / "tags.csv"
    taxonomy.write_text("name,parent,aliases\nRed,Colour,crimson|scarlet\nColour,,\n", encoding="utf-8")
    catalog = catalog_jsonl_write(
        tmp_path / "c.jsonl", [*GOOD, {"id": "sku-9", "title": "Scarf", "tags": ["Crimson"]}]
    )
    changed = catalog_jsonl_write(
        tmp_path / "c2.jsonl", [dict(GOOD[0], title="Red T-shirt, organic"), *BAD_LINES[1:2]]
    )
    steps = [
        ["import_taxonomy", str(taxonomy)],
        ["import_products", str(catalog), "--no-progress"],
        ["import_products", str(catalog), "--no-progress"],
        ["import_products", str(changed), "--no-progress"],
    ]
    completed = subprocess.run(
        [sys.executable, "-c", _EMBEDDED_SCRIPT, *map(json.dumps, steps)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    loaded, first, again, third = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded["code"] == 0 and "2 created" in loaded["out"], loaded
    assert first["code"] == 0, first
    assert "4 rows imported (4 new, 0 updated, 0 unchanged), 4 tags approved" in first["out"]
    assert "(0 new, 0 updated, 4 unchanged), 0 tags approved" in again["out"]
    assert third["code"] == 1 and "(0 new, 1 updated, 0 unchanged)" in third["out"]
    assert "line 2: title: must be a string, got number" in third["err"]

    with sqlite3.connect(database) as db:
        title = db.execute("SELECT title FROM annotation_product WHERE external_id = 'sku-1'").fetchone()[0]
        scarf_tags = db.execute(
            "SELECT t.name FROM annotation_producttag pt JOIN annotation_tag t ON t.id = pt.tag_id "
            "JOIN annotation_product p ON p.id = pt.product_id WHERE p.external_id = 'sku-9'"
        ).fetchall()
        parent = db.execute(
            "SELECT p.name FROM annotation_tag t JOIN annotation_tag p ON p.id = t.parent_id WHERE t.name = 'Red'"
        ).fetchone()
    assert title == "Red T-shirt, organic"
    assert scarf_tags == [("Red",)]  # the alias resolved to its tag
    assert parent == ("Colour",)
