"""The job sweeper's rules and a broker that is down, in-process (the real outages: test_broker_outage.py)."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
import rest_framework.views  # noqa: F401 — DRF's settings first: the parsers they load import api.errors
from django.utils import timezone

from annotation import jobs
from annotation.api.errors import json_exception_handler
from annotation.models import ExportJob, ImportJob, JobStatus, Setting, TrainingJob
from annotation.services import jobs_recovery
from annotation.services.queue import RECOMPUTE_PENDING_SETTING, queue_priorities_request
from annotation.services.worker_liveness import worker_name
from tests.annotation.test_worker_failures import _reset_producers


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(
        jobs_recovery, "task_send_or_log", lambda name, *args: calls.append((name, *args)) or True
    )
    return calls


@pytest.fixture
def waiting(monkeypatch) -> dict[str, list[tuple]]:
    """What waits in each queue, as the sweeper reads it from the broker."""
    messages: dict[str, list[tuple]] = {}
    monkeypatch.setattr(jobs_recovery, "queue_waiting", lambda queue: len(messages.get(queue, [])))
    monkeypatch.setattr(jobs_recovery, "queue_messages", lambda queue, limit: messages.get(queue, [])[:limit])
    return messages


def _age(model, job_id: int, seconds: float) -> None:
    model.objects.filter(id=job_id).update(created_at=timezone.now() - dt.timedelta(seconds=seconds))


@pytest.mark.django_db
def test_sweeper_resends_old_queued_jobs_whose_message_is_not_waiting(settings, sent, waiting):
    settings.JOBS_RESEND_AFTER_SECONDS = 60
    old_import = ImportJob.objects.create(source_name="a.jsonl", file_path="/nowhere", file_format="jsonl")
    _age(ImportJob, old_import.id, 120)
    ImportJob.objects.create(source_name="new.jsonl", file_path="/nowhere", file_format="jsonl")  # too new
    # Running under a live worker (this process) with a fresh heartbeat: not lost, not sent.
    running = ExportJob.objects.create(
        file_format="jsonl",
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
        progress={"attempt": 1, "worker": worker_name(), "heartbeat_at": timezone.now().isoformat()},
    )
    _age(ExportJob, running.id, 120)
    training = TrainingJob.objects.create(trigger="api")
    _age(TrainingJob, training.id, 120)

    # The training's message still waits; beat's own periodic task waits in the default queue.
    waiting["train"] = [(jobs.MODEL_TRAIN, (training.id,))]
    waiting["default"] = [(jobs.TRAINING_JOBS_REAP, ())]
    assert jobs_recovery.jobs_resend_lost() == {jobs.IMPORT_RUN: [old_import.id]}
    assert sent == [(jobs.IMPORT_RUN, old_import.id)]

    waiting["train"] = []
    sent.clear()
    jobs_recovery.jobs_resend_lost()
    assert (jobs.MODEL_TRAIN, training.id) in sent and (jobs.EXPORT_RUN, running.id) not in sent


@pytest.mark.django_db
def test_sweeper_waits_when_it_cannot_tell(settings, sent, waiting, monkeypatch):
    settings.JOBS_RESEND_AFTER_SECONDS = 60
    job = ImportJob.objects.create(source_name="a.jsonl", file_path="/nowhere", file_format="jsonl")
    _age(ImportJob, job.id, 120)
    waiting["default"] = [(jobs.EXPORT_RUN, (1,))] * (jobs_recovery.PEEK_LIMIT + 1)  # too long to read
    assert jobs_recovery.jobs_resend_lost() == {}
    monkeypatch.setattr(jobs_recovery, "queue_waiting", lambda queue: None)  # the broker is down
    assert jobs_recovery.jobs_resend_lost() == {}
    assert sent == []


@pytest.mark.django_db
def test_a_pending_priority_recompute_is_resent_and_cleared_by_the_recompute(settings, sent, waiting):
    settings.JOBS_RESEND_AFTER_SECONDS = 60
    with jobs.transaction.atomic():
        queue_priorities_request()
    assert Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING).exists()
    jobs_recovery.jobs_resend_lost()
    assert sent == []  # requested just now
    Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING).update(
        updated_at=timezone.now() - dt.timedelta(hours=1)
    )
    jobs_recovery.jobs_resend_lost()
    assert sent == [(jobs.QUEUE_PRIORITIES_RECOMPUTE,)]
    from annotation.services.queue import queue_priorities_recompute

    queue_priorities_recompute()
    assert not Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING).exists()


@pytest.mark.django_db(transaction=True)
def test_broker_down_send_after_commit_is_logged_not_raised_and_bounded(caplog):
    from tagstudio.celery import app

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    keys = ("broker_write_url", "broker_read_url")
    saved = {key: app.conf.get(key) for key in keys}
    app.conf.update({key: f"redis://127.0.0.1:{closed}/0" for key in keys})
    _reset_producers(app)
    try:
        started = time.monotonic()
        with jobs.transaction.atomic():
            job = ExportJob.objects.create(file_format="jsonl")
            jobs.export_run_enqueue(job.id)
        assert time.monotonic() - started < 5
        assert ExportJob.objects.get(id=job.id).status == JobStatus.QUEUED
        assert "sends it again once the broker is back" in caplog.text
        with pytest.raises(jobs.BrokerUnavailable):
            jobs.task_send(jobs.EXPORT_RUN, job.id)
        assert jobs.queue_waiting("default") is None
    finally:
        app.conf.update(saved)
        _reset_producers(app)


def test_broker_unavailable_is_a_503_in_the_api_error_shape():
    response = json_exception_handler(jobs.BrokerUnavailable("down"), {})
    assert response.status_code == 503 and response["Retry-After"]
    assert response.data["error"] == "broker_unavailable" and response.data["fields"] == {}
