"""Issue 14's smaller import findings against the real PostgreSQL: repeated ids reported, the uploaded
file's own name in messages, uploaded files removed after their retention time, no empty tags from a
reviewed product's re-import."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotation import jobs, tasks
from annotation.models import ImportJob, JobStatus, Product, ReviewStatus, Tag
from annotation.services.imports import (
    import_files_remove_expired,
    import_job_create,
    import_job_run,
    import_products,
    parse_batches,
    write_products_generic,
    write_tags_generic,
)
from annotation.taxonomy.resolver import TagResolver
from tests.factories import catalog_jsonl_write

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("batch_size", [100, 2])
def test_repeated_ids_are_counted_and_named_not_called_unchanged(tmp_path, batch_size):
    rows = [
        {"id": "dup", "title": "First"},
        {"id": "x", "title": "Other"},
        {"id": "dup", "title": "Second"},
        {"id": "y", "title": "Y"},
        {"id": "dup", "title": "Third"},
    ]
    stats = import_products(
        catalog_jsonl_write(tmp_path / "c.jsonl", rows), batch_size=batch_size, parallel=False
    )
    assert (stats.rows_ok, stats.rows_duplicate) == (5, 2)
    assert stats.products_created == 3 and stats.products_unchanged == 0
    assert [(w.line, w.field, w.warning) for w in stats.warnings] == [(3, "id", True), (5, "id", True)]
    assert "repeats the id 'dup'" in stats.warnings[0].reason
    if batch_size == 100:
        assert "of line 1" in stats.warnings[0].reason and "of line 3" in stats.warnings[1].reason
    assert Product.objects.get(external_id="dup").title == "Third"  # the last occurrence wins


def test_import_job_reports_repeated_ids_as_warnings(tmp_path, settings):
    settings.IMPORT_DIR = str(tmp_path / "imports")
    data = b'{"id": "a", "title": "A"}\n{"id": "a", "title": "A again"}\n'
    with open(tmp_path / "up.jsonl", "wb") as handle:
        handle.write(data)
    with open(tmp_path / "up.jsonl", "rb") as handle:
        job = import_job_create(source=handle, filename="up.jsonl")
    job = import_job_run(job.id)
    assert job.status == JobStatus.SUCCEEDED and job.rows_ok == 2
    assert job.errors == [
        {
            "line": 2,
            "field": "id",
            "reason": "repeats the id 'a' of line 1; this later row is imported",
            "warning": True,
        }
    ]


def test_format_errors_name_the_uploaded_file(tmp_path, settings, admin_api):
    settings.IMPORT_DIR = str(tmp_path / "imports")
    upload = SimpleUploadedFile("my catalog.csv", b"just some words\n")
    response = admin_api.post("/api/v1/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert "my catalog.csv does not look like CSV" in str(response.json())


def test_job_failure_names_the_uploaded_file(tmp_path, settings):
    settings.IMPORT_DIR = str(tmp_path / "imports")
    (tmp_path / "good.jsonl").write_bytes(b'{"id": "a", "title": "A"}\n')
    with open(tmp_path / "good.jsonl", "rb") as handle:
        job = import_job_create(source=handle, filename="catalog-2026.jsonl")
    with open(job.file_path, "wb") as stored:  # the stored copy goes bad before the worker reads it
        stored.write(b"# not a catalog any more\n")
    job = import_job_run(job.id)
    assert job.status == JobStatus.FAILED
    assert "catalog-2026.jsonl" in job.error and job.file_path.rsplit("/", 1)[-1] not in job.error


def test_gbk_csv_and_cr_only_files_import_every_record(tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("id,title,tags\nzh-1,北京搬家公司,品类:搬家\nzh-2,上海家政,品类:家政\n".encode("gbk"))
    stats = import_products(gbk)
    assert (stats.rows_ok, stats.rows_rejected) == (2, 0)
    assert Product.objects.get(external_id="zh-1").title == "北京搬家公司"
    cr_jsonl = tmp_path / "mac.jsonl"
    cr_jsonl.write_bytes(b"".join(b'{"id": "m%d", "title": "T%d"}\r' % (n, n) for n in range(5)))
    assert (
        import_products(cr_jsonl).rows_ok,
        Product.objects.filter(external_id__startswith="m").count(),
    ) == (5, 5)
    cr_csv = tmp_path / "mac.csv"
    cr_csv.write_bytes(b"id,title\r" + b"".join(b"c%d,T%d\r" % (n, n) for n in range(5)))
    stats = import_products(cr_csv)
    assert (stats.rows_ok, stats.rows_rejected, stats.products_created) == (5, 0, 5)


def test_control_characters_in_ids_are_rejected_rows(tmp_path):
    path = catalog_jsonl_write(
        tmp_path / "c.jsonl", [{"id": "a\nb", "title": "T"}, {"id": "ok", "title": "T"}]
    )
    stats = import_products(path)
    assert (stats.rows_ok, stats.rows_rejected) == (1, 1)
    assert (stats.errors[0].line, stats.errors[0].field) == (1, "id")
    assert not Product.objects.filter(external_id__contains="\n").exists()


def test_reimporting_a_reviewed_product_creates_no_empty_tags_postgres(tmp_path):
    first = catalog_jsonl_write(tmp_path / "a.jsonl", [{"id": "r1", "title": "T", "tags": ["Red"]}])
    import_products(first, parallel=False)
    Product.objects.filter(external_id="r1").update(review_status=ReviewStatus.REVIEWED)
    again = catalog_jsonl_write(
        tmp_path / "b.jsonl",
        [
            {"id": "r1", "title": "T", "tags": ["Red", "Brand new name"]},
            {"id": "u1", "title": "U", "tags": ["Fresh"]},
        ],
    )
    stats = import_products(again, parallel=False)
    assert stats.tags_added == 1  # u1 takes "Fresh"; the reviewed r1 takes nothing
    assert set(Tag.objects.values_list("name", flat=True)) == {"Red", "Fresh"}


def test_reimporting_a_reviewed_product_creates_no_empty_tags_generic(tmp_path):
    """The embedded mode's writer, run here on PostgreSQL through Django's bulk operations."""
    rows = [{"id": "r1", "title": "T", "tags": ["Red"]}]
    batch = next(
        parse_batches(
            catalog_jsonl_write(tmp_path / "a.jsonl", rows),
            "jsonl",
            batch_size=10,
            max_errors=10,
            encode=False,
        )
    )
    resolver = TagResolver()
    _, _, ids = write_products_generic(batch.rows)
    write_tags_generic(batch.rows, ids, resolver)
    Product.objects.filter(external_id="r1").update(review_status=ReviewStatus.REVIEWED)
    rows = [
        {"id": "r1", "title": "T", "tags": ["Red", "Brand new name"]},
        {"id": "u1", "title": "U", "tags": ["Fresh"]},
    ]
    batch = next(
        parse_batches(
            catalog_jsonl_write(tmp_path / "b.jsonl", rows),
            "jsonl",
            batch_size=10,
            max_errors=10,
            encode=False,
        )
    )
    _, _, ids = write_products_generic(batch.rows)
    assert write_tags_generic(batch.rows, ids, resolver) == 1
    assert set(Tag.objects.values_list("name", flat=True)) == {"Red", "Fresh"}


def _age(path, hours: float) -> None:
    stamp = time.time() - hours * 3600
    os.utime(path, (stamp, stamp))


def test_uploaded_files_are_removed_after_their_retention_but_not_while_their_job_is_open(tmp_path, settings):
    settings.IMPORT_DIR = str(tmp_path / "imports")
    settings.IMPORT_FILE_RETENTION_HOURS = 24
    catalog = tmp_path / "c.jsonl"
    catalog.write_bytes(b'{"id": "a", "title": "A"}\n')

    def upload(name: str) -> ImportJob:
        with catalog.open("rb") as handle:
            return import_job_create(source=handle, filename=name)

    old_done, recent_done, old_queued, old_running = (
        upload(n) for n in ("1.jsonl", "2.jsonl", "3.jsonl", "4.jsonl")
    )
    now = timezone.now()
    ImportJob.objects.filter(pk=old_done.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=now - dt.timedelta(hours=30)
    )
    ImportJob.objects.filter(pk=recent_done.pk).update(
        status=JobStatus.FAILED, finished_at=now - dt.timedelta(hours=2)
    )
    ImportJob.objects.filter(pk=old_running.pk).update(status=JobStatus.RUNNING)
    orphan = Path(settings.IMPORT_DIR) / "orphan.jsonl"
    orphan.write_bytes(b"{}\n")
    fresh_orphan = Path(settings.IMPORT_DIR) / "fresh.jsonl"
    fresh_orphan.write_bytes(b"{}\n")
    for job in (old_done, recent_done, old_queued, old_running):
        _age(job.file_path, 48)
    _age(orphan, 48)

    removed = import_files_remove_expired()
    assert sorted(removed) == sorted([Path(old_done.file_path).name, "orphan.jsonl"])
    assert not Path(old_done.file_path).exists() and not orphan.exists()
    for job in (recent_done, old_queued, old_running):
        assert Path(job.file_path).exists()
    assert fresh_orphan.exists()
    assert ImportJob.objects.filter(pk=old_done.pk).exists()  # the report stays


def test_the_sweep_is_on_the_beat_schedule(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule[jobs.IMPORT_FILES_REMOVE_EXPIRED] == settings.IMPORT_FILE_SWEEP_SECONDS
    assert tasks.import_files_remove_expired.name == jobs.IMPORT_FILES_REMOVE_EXPIRED
