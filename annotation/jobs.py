"""Background work, enqueued by task name: the one module services use to start a Celery task.

Services never import ``annotation.tasks`` (the tasks import the services, so the dependency points one
way). They call these functions, which send the task by the name ``annotation/tasks.py`` registers, on
the Celery app the process runs (``tagstudio.celery``: Redis in production, kombu's file queue in the
embedded mode, whatever a test points the app at). ``send_task`` applies ``CELERY_TASK_ROUTES`` by name
(training goes to the ``train`` queue) as ``delay`` did.

The names below are a contract with running workers: a deployed worker executes what these names say,
so renaming one is a migration (deploy the worker with both names first).
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction

IMPORT_RUN = "annotation.tasks.import_run"
MODEL_TRAIN = "annotation.tasks.model_train"
SUGGESTIONS_REFRESH = "annotation.tasks.suggestions_refresh"
QUEUE_PRIORITIES_RECOMPUTE = "annotation.tasks.queue_priorities_recompute"
TRAINING_JOBS_REAP = "annotation.tasks.training_jobs_reap"
CLAIMS_RELEASE_EXPIRED = "annotation.tasks.claims_release_expired"
EXPORT_RUN = "annotation.tasks.export_run"


def task_send(name: str, *args: Any) -> None:
    """Send task ``name`` with ``args`` to the broker now."""
    current_app.send_task(name, args=args)


def task_send_on_commit(name: str, *args: Any) -> None:
    """Send task ``name`` once the caller's transaction commits (at once outside a transaction); nothing
    is sent if it rolls back, so a worker never looks for a row that does not exist."""
    transaction.on_commit(lambda: task_send(name, *args))


def import_run_enqueue(job_id: int) -> None:
    task_send_on_commit(IMPORT_RUN, job_id)


def model_train_enqueue(job_id: int) -> None:
    task_send_on_commit(MODEL_TRAIN, job_id)


def suggestions_refresh_enqueue(model_version_id: int, after_id: int = 0) -> None:
    task_send_on_commit(SUGGESTIONS_REFRESH, model_version_id, after_id)


def suggestions_refresh_send(model_version_id: int, after_id: int) -> None:
    """The next batch of a running refresh, sent at once: idle workers start on it while this batch runs
    inference (the batch's own writes commit later and do not concern the next one)."""
    task_send(SUGGESTIONS_REFRESH, model_version_id, after_id)


def queue_priorities_recompute_enqueue() -> None:
    task_send_on_commit(QUEUE_PRIORITIES_RECOMPUTE)


def export_run_enqueue(job_id: int) -> None:
    task_send_on_commit(EXPORT_RUN, job_id)
