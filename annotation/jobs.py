"""Background work, enqueued by task name: the one module services use to start a Celery task.

Services never import ``annotation.tasks`` (the tasks import the services, so the dependency points one
way). They call these functions, which send the task by the name ``annotation/tasks.py`` registers, on
the Celery app the process runs (``tagstudio.celery``: Redis in production, kombu's file queue in the
embedded mode, whatever a test points the app at). ``send_task`` applies ``CELERY_TASK_ROUTES`` by name
(training goes to the ``train`` queue) as ``delay`` did.

The names below are a contract with running workers: a deployed worker executes what these names say,
so renaming one is a migration (deploy the worker with both names first).

When the broker is down: the job's row is the record of the work, the message only a wake-up call. A
send after commit that the broker refuses (within the bounded publish retry, CELERY_TASK_PUBLISH_RETRY_POLICY)
is logged and dropped: the request that committed the job still succeeds, and the periodic sweeper
(``annotation.services.jobs_recovery``, task ``jobs_resend_lost``) sends the job again once the broker is
back. Every task claims its job with a conditional UPDATE, so a message sent twice runs the job once.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from celery import current_app
from django.db import transaction
from kombu.exceptions import ChannelError, OperationalError

logger = logging.getLogger(__name__)

IMPORT_RUN = "annotation.tasks.import_run"
MODEL_TRAIN = "annotation.tasks.model_train"
SUGGESTIONS_REFRESH = "annotation.tasks.suggestions_refresh"
QUEUE_PRIORITIES_RECOMPUTE = "annotation.tasks.queue_priorities_recompute"
TRAINING_JOBS_REAP = "annotation.tasks.training_jobs_reap"
CLAIMS_RELEASE_EXPIRED = "annotation.tasks.claims_release_expired"
EXPORT_RUN = "annotation.tasks.export_run"
JOBS_RESEND_LOST = "annotation.tasks.jobs_resend_lost"
IMPORT_FILES_REMOVE_EXPIRED = "annotation.tasks.import_files_remove_expired"
BULK_ACTION_RUN = "annotation.tasks.bulk_action_run"
AUTO_APPROVAL_RUN = "annotation.tasks.auto_approval_run"

# What a broker that is down or unreachable raises from a publish (after the publish retry policy).
_BROKER_ERRORS = (OperationalError, ConnectionError, OSError, TimeoutError)


class BrokerUnavailable(RuntimeError):
    """The broker did not take a message (down or unreachable). The API answers 503."""


def task_send(name: str, *args: Any) -> None:
    """Send task ``name`` with ``args`` to the broker now; BrokerUnavailable when it cannot take it."""
    try:
        current_app.send_task(name, args=args)
    except _BROKER_ERRORS as exc:
        raise BrokerUnavailable(f"the broker did not take {name}{args}: {exc}") from exc


def task_send_or_log(name: str, *args: Any) -> bool:
    """Send task ``name`` now; when the broker is down, log it and return False (the job stays in its
    table for the sweeper to send again)."""
    try:
        task_send(name, *args)
    except BrokerUnavailable as exc:
        logger.warning("%s; the job sweeper sends it again once the broker is back", exc)
        return False
    return True


def task_send_on_commit(name: str, *args: Any) -> None:
    """Send task ``name`` once the caller's transaction commits (at once outside a transaction); nothing
    is sent if it rolls back, so a worker never looks for a row that does not exist. A broker that is
    down does not fail the caller: what committed stays committed and the sweeper sends it later."""
    transaction.on_commit(lambda: task_send_or_log(name, *args))


def task_queue(name: str) -> str:
    """The queue ``CELERY_TASK_ROUTES`` sends task ``name`` to."""
    return current_app.amqp.router.route({}, name)["queue"].name


def queue_waiting(queue: str) -> int | None:
    """How many messages wait in ``queue`` on the broker, not counting those a worker already holds;
    None when the broker cannot be reached."""
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            try:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:  # no such queue: nothing was ever left in it (an empty Redis list)
                return 0
    except _BROKER_ERRORS:
        return None


def queue_messages(queue: str, limit: int) -> list[tuple[str, tuple]] | None:
    """(task name, args) of the first ``limit`` messages waiting in ``queue``, where the broker lets them be
    read without taking them (Redis: the queue is a list); None elsewhere or when the broker is down."""
    try:
        with current_app.connection_for_write() as conn:
            if conn.transport.driver_type != "redis":
                return None
            conn.ensure_connection(max_retries=1)
            raw = conn.default_channel.client.lrange(queue, 0, limit - 1)
    except _BROKER_ERRORS:
        return None
    messages = []
    for item in raw:
        try:
            message = json.loads(item)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]  # Celery's message protocol 2: [args, kwargs, embed]
            messages.append((message["headers"]["task"], tuple(args)))
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # not a task message this code sent (another content type): it cannot be ours
    return messages


def import_run_enqueue(job_id: int) -> None:
    task_send_on_commit(IMPORT_RUN, job_id)


def model_train_enqueue(job_id: int) -> None:
    task_send_on_commit(MODEL_TRAIN, job_id)


def suggestions_refresh_enqueue(model_version_id: int, after_id: int = 0) -> None:
    task_send_on_commit(SUGGESTIONS_REFRESH, model_version_id, after_id)


def suggestions_refresh_send(model_version_id: int, after_id: int) -> None:
    """The next batch of a running refresh, sent at once: idle workers start on it while this batch runs
    inference (the batch's own writes commit later and do not concern the next one). A broker that is
    down does not stop this batch; the sweeper restarts the chain once it is back."""
    task_send_or_log(SUGGESTIONS_REFRESH, model_version_id, after_id)


def queue_priorities_recompute_enqueue() -> None:
    task_send_on_commit(QUEUE_PRIORITIES_RECOMPUTE)


def export_run_enqueue(job_id: int) -> None:
    task_send_on_commit(EXPORT_RUN, job_id)


def bulk_action_run_enqueue(action_id: int) -> None:
    task_send_on_commit(BULK_ACTION_RUN, action_id)


def auto_approval_run_enqueue() -> None:
    task_send_on_commit(AUTO_APPROVAL_RUN)
