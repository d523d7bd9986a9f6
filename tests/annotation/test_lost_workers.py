"""Import, export and bulk-review jobs whose worker died while running them (annotation.services.jobs_recovery).

Real PostgreSQL; real processes stand in for the workers (a live ``sleep``, a finished process whose pid is
free, an import killed with SIGKILL). The broker side of the sweep (what waits, what is sent) is the
in-process stand-in of test_jobs_recovery: what it decides is the subject here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from annotation import jobs
from annotation.models import BulkAction, ExportJob, ImportJob, JobStatus, Product, ProductTag
from annotation.services import jobs_recovery
from annotation.services.exports import export_job_file, export_job_run
from annotation.services.imports import import_job_create, import_job_run
from annotation.services.job_claims import JobHeartbeat, queued_job_lease
from annotation.services.worker_liveness import worker_name
from tests.annotation.test_jobs_recovery import sent, waiting  # noqa: F401 — fixtures
from tests.annotation.test_worker_failures import (  # noqa: F401 — broker: a fixture
    REPO_ROOT,
    Worker,
    _database_url,
    _wait_for,
    broker,
)
from tests.factories import TagFactory

HOST = socket.gethostname()


@pytest.fixture
def live_pid() -> int:
    """A process of this host that stays alive for the test."""
    process = subprocess.Popen(["sleep", "120"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _running(model, *, worker: str, beat_age_s: float = 0.0, attempt: int = 1, **fields):
    beat = timezone.now() - dt.timedelta(seconds=beat_age_s)
    return model.objects.create(
        status=JobStatus.RUNNING,
        started_at=beat,
        progress={"attempt": attempt, "worker": worker, "heartbeat_at": beat.isoformat()},
        **fields,
    )


def _import_job(**fields) -> ImportJob:
    return _running(ImportJob, source_name="c.jsonl", file_path="/nowhere", file_format="jsonl", **fields)


@pytest.mark.django_db
def test_a_job_whose_pid_is_dead_is_requeued_and_sent_again(sent, waiting, dead_pid):  # noqa: F811
    job = _import_job(worker=f"{HOST}:{dead_pid}")  # fresh heartbeat: the dead pid alone decides
    export = _running(ExportJob, worker=f"{HOST}:{dead_pid}", file_format="jsonl")
    partial = export_job_file(export).with_name(f".{export_job_file(export).name}.{dead_pid}.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("half an export")

    assert jobs_recovery.jobs_resend_lost() == {jobs.IMPORT_RUN: [job.id], jobs.EXPORT_RUN: [export.id]}

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.error == ""
    assert job.progress["attempt"] == 2 and "worker" not in job.progress
    assert [lost["worker"] for lost in job.progress["lost"]] == [f"{HOST}:{dead_pid}"]
    assert not partial.exists()  # the dead attempt's temporary file is gone
    # The next sweep does not send it again while its message waits.
    sent.clear()
    waiting["default"] = [(jobs.IMPORT_RUN, (job.id,)), (jobs.EXPORT_RUN, (export.id,))]
    jobs_recovery.jobs_resend_lost(now=timezone.now() + dt.timedelta(hours=1))
    assert sent == []


@pytest.mark.django_db
def test_a_live_worker_with_a_fresh_heartbeat_is_left_alone(sent, waiting, live_pid):  # noqa: F811
    tag = TagFactory(name="navy")
    jobs_ = [
        _import_job(worker=f"{HOST}:{live_pid}"),
        _running(ExportJob, worker=f"{HOST}:{live_pid}", file_format="csv"),
        _running(BulkAction, worker=worker_name(), tag=tag),  # this very process (the sweeper's)
        # Another host's worker: its pid cannot be checked from here, its heartbeat is fresh.
        _running(ExportJob, worker="elsewhere:1", beat_age_s=5, file_format="csv"),
    ]
    assert jobs_recovery.jobs_resend_lost() == {}
    for job in jobs_:
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.progress["attempt"] == 1
    assert sent == []


@pytest.mark.django_db
def test_a_stale_heartbeat_is_reaped_and_a_bulk_action_fails_at_once(settings, sent, waiting):  # noqa: F811
    settings.JOBS_STALE_AFTER_SECONDS = 60
    tag = TagFactory(name="red")
    export = _running(ExportJob, worker="elsewhere:4242", beat_age_s=61, file_format="jsonl")
    fresh = _running(ExportJob, worker="elsewhere:4243", beat_age_s=50, file_format="jsonl")
    action = _running(BulkAction, worker="elsewhere:4244", beat_age_s=61, tag=tag, total=9000, done=4000)
    seen = action.progress["heartbeat_at"]

    assert jobs_recovery.jobs_resend_lost() == {jobs.EXPORT_RUN: [export.id]}

    export.refresh_from_db()
    fresh.refresh_from_db()
    action.refresh_from_db()
    assert export.status == JobStatus.QUEUED and export.progress["attempt"] == 2
    assert fresh.status == JobStatus.RUNNING
    assert action.status == JobStatus.FAILED and action.finished_at is not None
    assert action.error.startswith(f"worker lost: no heartbeat from elsewhere:4244 since {seen}")
    assert "stay decided" in action.error and action.done == 4000  # the finished chunks are kept


@pytest.mark.django_db
def test_after_max_attempts_the_job_fails_naming_the_lost_worker(settings, sent, waiting, dead_pid):  # noqa: F811
    settings.JOBS_MAX_ATTEMPTS = 3
    job = _import_job(worker=f"{HOST}:{dead_pid}", attempt=3)
    seen = job.progress["heartbeat_at"]

    assert jobs_recovery.jobs_resend_lost() == {}

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert job.error.startswith(
        f"worker lost: no heartbeat from {HOST}:{dead_pid} since {seen} (the process no longer exists); "
        "gave up after 3 attempts"
    )
    assert job.progress["lost"] == [{"attempt": 3, "worker": f"{HOST}:{dead_pid}", "last_seen": seen}]


@pytest.mark.django_db
def test_a_heartbeat_written_after_the_sweeper_looked_keeps_the_job(settings):
    settings.JOBS_STALE_AFTER_SECONDS = 60
    job = _running(ExportJob, worker="elsewhere:7", beat_age_s=120, file_format="jsonl")
    judged = ExportJob.objects.get(id=job.id)
    fresh = dict(job.progress, heartbeat_at=timezone.now().isoformat())
    ExportJob.objects.filter(id=job.id).update(progress=fresh)  # the worker beats meanwhile
    writing = export_job_file(job).with_name(f".{export_job_file(job).name}.7.partial")
    writing.parent.mkdir(parents=True, exist_ok=True)
    writing.write_text("the live attempt's export so far")

    assert jobs_recovery.running_job_recover(judged, rerun=True, left="") is None
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.progress == fresh
    assert writing.exists()  # the job stayed its worker's: so does the file it is writing
    writing.unlink()  # the exports folder is shared by the session's tests


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_keeps_the_job_fresh_and_notices_when_it_is_lost(settings):
    job = ExportJob.objects.create(file_format="jsonl")
    _, lease = queued_job_lease(ExportJob, job.id)
    first = lease.progress["heartbeat_at"]
    assert lease.progress["worker"] == worker_name() and lease.attempt == 1

    with JobHeartbeat(lease, interval=lambda: 0.05) as heartbeat:
        _wait_for(
            lambda: ExportJob.objects.get(id=job.id).progress["heartbeat_at"] > first,
            "a heartbeat",
            timeout=10,
        )
        ExportJob.objects.filter(id=job.id).update(status=JobStatus.FAILED)  # the sweeper gave it up
        _wait_for(lambda: heartbeat.lost, "the thread to notice", timeout=10, every=0.05)
    assert not lease.finish(JobStatus.SUCCEEDED)  # a lost attempt cannot overwrite the outcome
    assert ExportJob.objects.get(id=job.id).status == JobStatus.FAILED


@pytest.mark.django_db
def test_an_export_requeued_after_a_lost_worker_runs_again_to_completion(sent, waiting, dead_pid):  # noqa: F811
    job = _running(ExportJob, worker=f"{HOST}:{dead_pid}", file_format="jsonl")
    jobs_recovery.jobs_resend_lost()
    finished = export_job_run(job.id)  # the message the sweeper sent
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.progress["attempt"] == 2 and finished.progress["worker"] == worker_name()
    assert Path(finished.file_path).exists() and not list(Path(finished.file_path).parent.glob(".*.partial"))


# --- A real worker process killed in the middle of an import ------------------------------------------

ROWS = 30_000


def _catalog(path: Path) -> None:
    with path.open("w") as out:
        for i in range(ROWS):
            row = {"id": f"sku-{i:06d}", "title": f"Cotton shirt {i}", "tags": [f"colour {i % 7}"]}
            out.write(json.dumps(row) + "\n")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_import_killed_mid_way_is_rerun_without_duplicates_or_missing_rows(tmp_path, sent, waiting):  # noqa: F811
    source = tmp_path / "catalog.jsonl"
    _catalog(source)
    with source.open("rb") as handle:
        job = import_job_create(source=handle, filename="catalog.jsonl")
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(),
        DJANGO_SETTINGS_MODULE="tagstudio.settings_test",
        IMPORT_DIR=str(settings.IMPORT_DIR),
        IMPORT_BATCH_SIZE="100",  # many small transactions: the kill lands between two of them
        PYTHONUNBUFFERED="1",
    )
    code = f"import django; django.setup(); from annotation.tasks import import_run; import_run({job.id})"
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env)
    try:
        _wait_for(
            lambda: ImportJob.objects.get(id=job.id).rows_total >= 1000,
            "the import to be under way",
            every=0.02,
        )
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()

    crashed = ImportJob.objects.get(id=job.id)
    assert crashed.status == JobStatus.RUNNING and crashed.progress["worker"] == f"{HOST}:{worker.pid}"
    written = Product.objects.count()
    assert 0 < written < ROWS  # the dead attempt left part of the catalog: its committed batches

    assert jobs_recovery.jobs_resend_lost() == {jobs.IMPORT_RUN: [job.id]}
    started = time.monotonic()
    finished = import_job_run(job.id)  # the message the sweeper sent
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert time.monotonic() - started < 120

    assert finished.progress["attempt"] == 2
    assert finished.progress["lost"][0]["worker"] == f"{HOST}:{worker.pid}"
    assert finished.rows_ok == ROWS and finished.products_created == ROWS - written
    assert Product.objects.count() == ROWS
    assert Product.objects.values("external_id").distinct().count() == ROWS
    titles = dict(Product.objects.values_list("external_id", "title"))
    assert all(titles[f"sku-{i:06d}"] == f"Cotton shirt {i}" for i in range(ROWS))
    assert ProductTag.objects.count() == ROWS  # one tag per product, none twice


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_celery_pool_process_killed_during_an_import_is_recovered_by_the_redelivery(tmp_path, broker):  # noqa: F811
    """The whole chain with a real worker and no beat (so no sweeper): its pool process dies with SIGKILL
    mid-import; Celery redelivers the message; the redelivered task finds the job running under a dead pid of
    this host, requeues it as attempt 2 and runs it to completion."""
    source = tmp_path / "catalog.jsonl"
    _catalog(source)
    extra = {"IMPORT_DIR": str(settings.IMPORT_DIR), "IMPORT_BATCH_SIZE": "100"}
    worker = Worker(broker, tmp_path / "worker.log", beat=False, env_extra=extra)
    try:
        with source.open("rb") as handle:
            job = import_job_create(source=handle, filename="catalog.jsonl")

        def pool_pid() -> int | None:
            current = ImportJob.objects.get(id=job.id)
            host, _, pid = current.progress.get("worker", "").rpartition(":")
            return int(pid) if current.rows_total >= 1000 and host == HOST else None

        pid = _wait_for(pool_pid, "the import to be under way", every=0.02)
        os.kill(pid, signal.SIGKILL)
        finished = _wait_for(
            lambda: ImportJob.objects.filter(
                id=job.id, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]
            ).first(),
            "the import to be recovered and finish",
            timeout=120,
        )
    except AssertionError:
        print(worker.output())
        raise
    finally:
        worker.stop()
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.progress["attempt"] == 2 and finished.progress["lost"][0]["worker"] == f"{HOST}:{pid}"
    assert Product.objects.count() == ROWS == Product.objects.values("external_id").distinct().count()
    assert ProductTag.objects.count() == ROWS


@pytest.mark.django_db
def test_a_lease_runs_its_work_and_records_a_failure_but_not_a_lost_attempt():
    job = ExportJob.objects.create(file_format="jsonl")
    _, lease = queued_job_lease(ExportJob, job.id)
    assert lease.run(lambda: 42) == (True, 42)

    def lose():
        ExportJob.objects.filter(id=job.id).update(progress={"attempt": 2})  # requeued and claimed again
        lease.beat_or_stop()

    assert lease.run(lose) == (False, None)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.error == ""  # the attempt that took over owns the job

    other = ExportJob.objects.create(file_format="jsonl")
    _, lease = queued_job_lease(ExportJob, other.id)

    def fail():
        raise OSError("disk full: /exports")

    assert lease.run(fail) == (False, None)  # the worker stays up
    other.refresh_from_db()
    assert other.status == JobStatus.FAILED and other.error == "disk full: /exports"

    third = ExportJob.objects.create(file_format="jsonl")
    _, lease = queued_job_lease(ExportJob, third.id)
    with pytest.raises(OSError, match="disk full"):
        lease.run(fail, reraise=True)
    assert ExportJob.objects.get(id=third.id).status == JobStatus.FAILED


@pytest.mark.django_db
def test_a_redelivered_task_takes_over_at_once_from_a_dead_worker_of_this_host(dead_pid, live_pid):
    from annotation import tasks

    export = _running(ExportJob, worker=f"{HOST}:{dead_pid}", file_format="jsonl")
    tasks.export_run(export.id)  # the redelivery runs it, no sweep
    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED
    assert export.progress["attempt"] == 2 and export.progress["lost"][0]["worker"] == f"{HOST}:{dead_pid}"
    assert Path(export.file_path).exists()
    Path(export.file_path).unlink()  # the exports folder is shared by the session's tests

    action = _running(BulkAction, worker=f"{HOST}:{dead_pid}", tag=TagFactory(name="teal"), done=7)
    tasks.bulk_action_run(action.id)  # never rerun: failed at once
    action.refresh_from_db()
    assert action.status == JobStatus.FAILED
    assert action.error.startswith(f"worker lost: no heartbeat from {HOST}:{dead_pid}") and action.done == 7

    # A live worker of this host, another host's worker, or this very process: a duplicate, left alone.
    for worker in (f"{HOST}:{live_pid}", "elsewhere:1", worker_name()):
        busy = _running(ExportJob, worker=worker, file_format="csv")
        tasks.export_run(busy.id)
        busy.refresh_from_db()
        assert busy.status == JobStatus.RUNNING
        assert busy.progress["attempt"] == 1 and busy.progress["worker"] == worker
