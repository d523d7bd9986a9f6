"""An admin starts an export from the exports page; a real Celery worker (Redis broker) runs it; the file
downloads when done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from annotation.models import ExportJob, JobStatus, Product, ProductTag, TagSource
from annotation.services.tags import tag_create

REPO_ROOT = settings.BASE_DIR


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tagstudio.settings_test",
        DATABASE_URL=(
            f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
            f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}"
        ),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tagstudio", "worker", "-Q", "default", "--pool", "solo",
         "-n", f"export-test-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=REPO_ROOT,
        env=env,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    worker.log_path = tmp_path / "worker.log"
    yield worker
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


@pytest.mark.slow
def test_export_job_runs_in_a_worker_and_downloads(celery_worker, admin_user, client):
    tag = tag_create(name="Linen")
    product = Product.objects.create(external_id="w1", title="Linen shirt", tags_updated_at=timezone.now())
    ProductTag.objects.create(product=product, tag=tag, source=TagSource.REVIEW, approved_by=admin_user)
    client.force_login(admin_user)

    assert client.post("/exports/", {"file_format": "jsonl"}).status_code == 302
    job = ExportJob.objects.get()
    deadline = time.monotonic() + 90
    while job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        if celery_worker.poll() is not None:
            pytest.fail(f"the worker exited:\n{celery_worker.log_path.read_text()}")
        assert time.monotonic() < deadline, "the export job did not finish within 90 s"
        time.sleep(0.5)
        job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.rows == 1 and job.high_water_mark is not None

    download = client.get(f"/exports/{job.pk}/download/")
    assert download.status_code == 200
    records = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert [r["type"] for r in records] == ["product", "end"]
    assert records[0]["tags"][0]["name"] == "Linen" and records[0]["tags"][0]["approved_by"] == "adam"
