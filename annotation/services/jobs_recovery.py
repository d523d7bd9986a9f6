"""Work the broker lost: send again every job that waits in the database with no message to wake a worker.

A request commits its job's row first and sends the task after the commit (``annotation.jobs``). When
the broker is down at that moment, or restarts without persistence while the message waits, the row
stays ``queued`` and nothing would ever run it. The sweeper (task ``jobs_resend_lost``, every
``JOBS_SWEEP_SECONDS`` from beat, or the embedded worker's beat) sends it again:

- import, export, training and bulk-review jobs that are ``queued`` for longer than ``JOBS_RESEND_AFTER_SECONDS``;
- suggestion refreshes ``queued`` that long, or ``running`` with no batch done for that long (a chain
  whose next message was lost; it starts again from the first flagged product). Progress is what the
  sweeper saw of ``done`` last time, kept in the ``REFRESH_PROGRESS_SETTING`` row;
- a queue-priority recompute requested that long ago and not served yet
  (``annotation.services.queue.RECOMPUTE_PENDING_SETTING``), and likewise an auto-approval pass
  (``annotation.selectors.auto_approval.PENDING_KEY``).

Only when no message for the job waits in its queue: on Redis the sweeper reads the waiting messages
(up to ``PEEK_LIMIT``) without taking them; elsewhere, or behind a longer queue, only an empty queue
proves the message gone, so a queue that keeps filling (a long refresh) delays a lost job until it
drains, never loses it. (Beat's own periodic tasks wait in the same queue: hence the reading.)

Running twice is safe by construction, which is what allows sending again without knowing for sure the
message is gone: every task claims its job with a conditional UPDATE (``queued`` -> ``running``; a
training attempt moves only a job whose owner's heartbeat is stale), so a second message for the same job
does nothing while it runs or after it finished. Refresh batches take the product rows they write
``FOR UPDATE`` and write only still-flagged ones; a priority recompute holds an advisory lock.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from annotation.jobs import (
    AUTO_APPROVAL_RUN,
    BULK_ACTION_RUN,
    EXPORT_RUN,
    IMPORT_RUN,
    MODEL_TRAIN,
    QUEUE_PRIORITIES_RECOMPUTE,
    SUGGESTIONS_REFRESH,
    queue_messages,
    queue_waiting,
    task_queue,
    task_send_or_log,
)
from annotation.models import (
    OPEN_JOB_STATUSES,
    BulkAction,
    ExportJob,
    ImportJob,
    JobStatus,
    Setting,
    SuggestionRefresh,
    TrainingJob,
)
from annotation.selectors.auto_approval import PENDING_KEY as AUTO_APPROVAL_PENDING_KEY
from annotation.services.queue import RECOMPUTE_PENDING_SETTING

logger = logging.getLogger(__name__)

# Longer queues are not read: the job waits for them to drain (see the module docstring).
PEEK_LIMIT = 1000
# {refresh id: [done, when the sweeper first saw that count]} for the open refreshes.
REFRESH_PROGRESS_SETTING = "jobs_sweeper_refresh_progress"

_QUEUED_JOBS = (
    (ImportJob, IMPORT_RUN),
    (ExportJob, EXPORT_RUN),
    (TrainingJob, MODEL_TRAIN),
    (BulkAction, BULK_ACTION_RUN),
)


def jobs_resend_lost(*, now: dt.datetime | None = None) -> dict[str, list]:
    """Send again what waits with no message (see the module docstring). Returns what it sent, by task."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=float(settings.JOBS_RESEND_AFTER_SECONDS))
    waiting: dict[str, set | None] = {}

    def lost(task_name: str, *args) -> bool:
        """No message for ``task_name`` with ``args`` waits (as far as the broker can tell)."""
        queue = task_queue(task_name)
        if queue not in waiting:
            waiting[queue] = _waiting_messages(queue)
        known = waiting[queue]
        if known is None:
            return False  # the broker is down, or the queue too long to read: next sweep
        if task_name == SUGGESTIONS_REFRESH:  # any batch of the version's chain keeps it going
            return not any(name == task_name and queued[:1] == args[:1] for name, queued in known)
        return (task_name, args) not in known

    sent: dict[str, list] = {}

    def send(task_name: str, *args) -> None:
        if lost(task_name, *args) and task_send_or_log(task_name, *args):
            sent.setdefault(task_name, []).append(args[0] if len(args) == 1 else args)

    for model, task_name in _QUEUED_JOBS:
        for job_id in (
            model.objects.filter(status=JobStatus.QUEUED, created_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)
        ):
            send(task_name, job_id)
    for version_id in _refreshes_stalled(now=now, cutoff=cutoff):
        send(SUGGESTIONS_REFRESH, version_id, 0)
    if Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING, updated_at__lt=cutoff).exists():
        send(QUEUE_PRIORITIES_RECOMPUTE)
    if Setting.objects.filter(key=AUTO_APPROVAL_PENDING_KEY, updated_at__lt=cutoff).exists():
        send(AUTO_APPROVAL_RUN)

    if sent:
        logger.warning("sent again the jobs the broker had lost: %s", sent)
    return sent


def _waiting_messages(queue: str) -> set[tuple[str, tuple]] | None:
    """The (task, args) waiting in ``queue``: empty when the queue is; None when unknown."""
    count = queue_waiting(queue)
    if count is None:
        return None
    if count == 0:
        return set()
    if count > PEEK_LIMIT:
        return None
    messages = queue_messages(queue, PEEK_LIMIT)
    return None if messages is None else set(messages)


def _refreshes_stalled(*, now: dt.datetime, cutoff: dt.datetime) -> list[int]:
    """Model version ids of the open refreshes whose chain stopped: still ``queued`` after the cutoff, or
    ``running`` with the same ``done`` since before the cutoff. Remembers what it saw for the next sweep."""
    seen = Setting.objects.filter(key=REFRESH_PROGRESS_SETTING).values_list("value", flat=True).first() or {}
    progress: dict[str, list] = {}
    stalled: list[int] = []
    for refresh in SuggestionRefresh.objects.filter(status__in=OPEN_JOB_STATUSES, created_at__lt=cutoff):
        done, since = seen.get(str(refresh.id), (None, None))
        if done != refresh.done:
            since = now.isoformat()
        progress[str(refresh.id)] = [refresh.done, since]
        if refresh.status == JobStatus.QUEUED or dt.datetime.fromisoformat(since) < cutoff:
            stalled.append(refresh.model_version_id)
    if progress != seen:
        Setting.objects.update_or_create(
            key=REFRESH_PROGRESS_SETTING, defaults={"value": progress, "updated_at": now}
        )
    return sorted(set(stalled))
