"""annotation.jobs enqueues by name: every name it sends is a task annotation.tasks registers, routed as before."""

from __future__ import annotations

import pytest

from annotation import jobs, tasks
from annotation.services.exports import export_job_create
from tagstudio.celery import app

JOB_NAMES: set[str] = {
    value
    for key, value in vars(jobs).items()
    if key.isupper() and isinstance(value, str) and value.startswith("annotation.tasks.")
}


def test_every_job_name_is_a_registered_task_and_every_task_has_a_name():
    registered = {name for name in app.tasks if name.startswith("annotation.tasks.")}
    assert registered == JOB_NAMES
    # The names are a contract with running workers: they stay what they were.
    assert {
        f"annotation.tasks.{name}"
        for name in (
            "import_run",
            "model_train",
            "suggestions_refresh",
            "queue_priorities_recompute",
            "training_jobs_reap",
            "claims_release_expired",
            "export_run",
            "jobs_resend_lost",
            "import_files_remove_expired",
            "bulk_action_run",
            "auto_approval_run",
        )
    } == JOB_NAMES
    assert {getattr(tasks, name.rsplit(".", 1)[1]).name for name in JOB_NAMES} == JOB_NAMES


def test_training_is_routed_to_the_train_queue_by_name():
    assert app.amqp.router.route({}, jobs.MODEL_TRAIN)["queue"].name == "train"
    assert app.amqp.router.route({}, jobs.IMPORT_RUN)["queue"].name == "default"


@pytest.mark.django_db
def test_a_service_sends_its_task_by_name_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append((name, tuple(args))))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = export_job_create(file_format="jsonl")
    assert sent == [] and len(callbacks) == 1  # nothing leaves before the commit
    callbacks[0]()
    assert sent == [(jobs.EXPORT_RUN, (job.pk,))]
