"""Work the broker or a worker lost: send again every job that waits in the database with no message to
wake a worker, and resolve every job whose worker died while running it.

**Lost messages.** A request commits its job's row first and sends the task after the commit
(``annotation.jobs``). When the broker is down at that moment, or restarts without persistence while the
message waits, the row stays ``queued`` and nothing would ever run it. The sweeper (task
``jobs_resend_lost``, every ``JOBS_SWEEP_SECONDS`` from beat, or the embedded worker's beat) sends it again:

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

**Lost workers.** An import, export or bulk-review job records its worker (``host:pid``) and a heartbeat
in ``progress`` when it is claimed, and keeps the heartbeat fresh while it runs
(annotation.services.job_claims). If that worker dies (OOM kill, ``kill -9``, machine lost) the row would
stay ``running`` for ever. Celery redelivers the message of a lost pool process (``acks_late``): the
redelivered task finds the job ``running`` and, when the attempt's worker was a process of this host that
no longer runs, resolves it at once (``redelivered_job_recover``, from annotation.tasks) and claims it as
the next attempt. Otherwise (a whole worker lost, another host, no redelivery) the sweeper resolves each
``running`` job of these kinds whose worker is certainly gone: its pid no longer lives on this host, or
its heartbeat is older than ``JOBS_STALE_AFTER_SECONDS`` (annotation.services.worker_liveness). The move
is a conditional UPDATE on the very heartbeat it judged, so a worker that beats meanwhile keeps its job.
Per kind:

- **import: run again**, as attempt + 1 (``queued``, then sent), up to ``JOBS_MAX_ATTEMPTS`` attempts.
  An import is *not* one transaction: each batch of ``IMPORT_BATCH_SIZE`` rows commits on its own, so a
  dead attempt leaves the batches before it written. What makes the rerun safe is the upsert by external id
  (a unique column) with additive tags: the rerun rewrites nothing it finds unchanged and writes the rest,
  ending with the catalog one uninterrupted run would have left, without duplicates. Its counts
  (``products_created``/``updated``) are the rerun's: products the lost attempt created count as
  unchanged. The uploaded file is kept while the job is open (annotation.services.imports.retention).
- **export: run again** likewise. It writes a temporary file per process and renames it at the end, so a
  dead attempt never leaves a half-written export under the job's name; the sweeper removes its
  temporary file.
- **bulk review: fail, never rerun.** Each chunk commits its decisions with the action's counters, so
  what a dead attempt leaves is exactly what a failed action is documented to leave (annotation.services
  .bulk): the chunks it finished stay decided, and its undo reverts exactly those. A rerun would be safe
  for the products (decided once) but not for the record: it would report the products its own lost
  attempt decided as "already accepted (bulk action N)" and count again the ones that attempt skipped. The
  person who asked sees the failure and asks again for the rest, or undoes it.

After ``JOBS_MAX_ATTEMPTS`` attempts (or at once for bulk review) the job is ``failed`` with an ``error``
naming the lost worker and when it was last heard of ("worker lost: no heartbeat from host:1234 since
...") and what it left behind. Each lost attempt is listed in ``progress["lost"]`` (attempt, worker,
last seen); ``progress["attempt"]`` is the current one. Training jobs have their own takeover and reaper
(annotation.services.training.lifecycle) built on the same liveness checks.
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
    Job,
    JobStatus,
    Setting,
    SuggestionRefresh,
    TrainingJob,
)
from annotation.selectors.auto_approval import PENDING_KEY as AUTO_APPROVAL_PENDING_KEY
from annotation.services.exports import export_job_partials
from annotation.services.job_claims import jobs_stale_after_seconds
from annotation.services.queue import RECOMPUTE_PENDING_SETTING
from annotation.services.worker_liveness import heartbeat_of, pid_dead_here, worker_gone, worker_lost_message

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

# The kinds whose lost workers the sweeper resolves: task to send again, whether a rerun is safe, and what
# the error adds when the job is failed (see the module docstring for each choice).
_RUNNING_JOBS = (
    (
        ImportJob,
        IMPORT_RUN,
        True,
        "the batches written before stay imported; importing the file again completes them (an import "
        "rewrites nothing unchanged)",
    ),
    (ExportJob, EXPORT_RUN, True, "no export file was written"),
    (
        BulkAction,
        BULK_ACTION_RUN,
        False,
        "the products decided before stay decided (undo reverts them); ask again to decide the rest",
    ),
)


def jobs_max_attempts() -> int:
    """How many attempts an import or export gets when its workers keep dying."""
    return max(1, int(getattr(settings, "JOBS_MAX_ATTEMPTS", 3)))


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

    for model, task_name, rerun, left in _RUNNING_JOBS:
        for job in model.objects.filter(status=JobStatus.RUNNING).order_by("id"):
            if running_job_recover(job, rerun=rerun, left=left, now=now) == JobStatus.QUEUED:
                send(task_name, job.id)
    for model, task_name in _QUEUED_JOBS:
        for job_id in (
            model.objects.filter(status=JobStatus.QUEUED, created_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)
        ):
            if job_id not in sent.get(task_name, ()):  # requeued above: sent already
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


def running_job_recover(job: Job, *, rerun: bool, left: str, now: dt.datetime | None = None) -> str | None:
    """Resolve a ``running`` job whose worker is certainly gone: back to ``queued`` as attempt + 1 when
    ``rerun`` and attempts remain, else ``failed`` with an error naming the lost worker and ``left`` (what
    the dead attempts left behind). Returns the new status, or None when the job was left alone (worker
    alive, or it moved meanwhile)."""
    now = now or timezone.now()
    if job.status != JobStatus.RUNNING or not worker_gone(
        job.progress, job.started_at, stale_after=jobs_stale_after_seconds(), now=now
    ):
        return None
    progress = dict(job.progress or {})
    attempt = int(progress.get("attempt", 1))
    last_seen = heartbeat_of(progress) or job.started_at
    lost = {
        "attempt": attempt,
        "worker": progress.get("worker", "?"),
        "last_seen": last_seen.isoformat() if last_seen else None,
    }
    message = worker_lost_message(job.progress, job.started_at)
    progress["lost"] = [*progress.get("lost", []), lost]
    for key in ("worker", "heartbeat_at"):
        progress.pop(key, None)
    # Compare-and-set on what was judged: the same attempt, with the same heartbeat.
    current = type(job).objects.filter(id=job.id, status=JobStatus.RUNNING)
    for key in ("attempt", "heartbeat_at"):
        value = (job.progress or {}).get(key)
        current = current.filter(
            **{f"progress__{key}__isnull": True} if value is None else {f"progress__{key}": value}
        )
    if rerun and attempt < jobs_max_attempts():
        progress["attempt"] = attempt + 1
        if not current.update(status=JobStatus.QUEUED, progress=progress):
            return None
        _remove_partial_files(job)
        logger.warning(
            "%s %s: %s; queued again as attempt %s", job._meta.verbose_name, job.id, message, attempt + 1
        )
        return JobStatus.QUEUED
    tries = f"gave up after {attempt} attempts; " if rerun else ""
    error = f"{message}; {tries}{left}"
    if not current.update(status=JobStatus.FAILED, finished_at=now, error=error, progress=progress):
        return None
    _remove_partial_files(job)
    logger.warning("%s %s failed: %s", job._meta.verbose_name, job.id, error)
    return JobStatus.FAILED


def redelivered_job_recover(model: type[Job], job_id: int) -> None:
    """Called by a job's task before it claims the job (annotation.tasks). When the message came again for
    a job still ``running`` (Celery redelivers on a lost pool process: ``acks_late``) and the attempt's
    worker was a process of this host that is dead, resolve the job now as the sweeper would on its next
    pass (requeue, or fail a bulk action), so the redelivery claims it at once instead of leaving it to the
    sweep."""
    job = model.objects.filter(id=job_id, status=JobStatus.RUNNING).first()
    # Not ``claiming``: this very process may be running the attempt (an eager or threaded run), and a
    # killed pool process is replaced by one with another pid.
    if job is None or not pid_dead_here(job.progress):
        return
    for kind, _task_name, rerun, left in _RUNNING_JOBS:
        if kind is model:
            running_job_recover(job, rerun=rerun, left=left)


def _remove_partial_files(job: Job) -> None:
    """A dead export attempt's temporary file. Only once the compare-and-set above took the job: a worker
    that beat meanwhile keeps its job, and must keep the file it is writing."""
    if isinstance(job, ExportJob):
        for partial in export_job_partials(job):
            partial.unlink(missing_ok=True)


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
