"""Who runs a background job, and whether that worker is certainly gone.

A running job keeps in its ``progress`` the ``worker`` that claimed it (``host:pid``) and a
``heartbeat_at`` (ISO time) that the worker keeps fresh while it runs. A worker is *gone* when its pid no
longer lives on this host (killed, OOM, a zombie its parent has not reaped), or when its heartbeat is older
than a stale limit (the whole machine went away, or the process hangs). Training (annotation.services
.training.lifecycle) and the import, export and bulk-review jobs (annotation.services.job_claims,
annotation.services.jobs_recovery) both decide with these functions.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)


def seconds_setting(name: str, default: float) -> float:
    """A Django setting when the project defines it, else the environment variable of the same name."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from exc


def worker_name() -> str:
    """This process as a job's owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that its parent has not reaped yet is a zombie: dead for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def heartbeat_of(progress: dict[str, Any] | None) -> datetime | None:
    """The ``heartbeat_at`` a job's progress carries, or None."""
    value = (progress or {}).get("heartbeat_at")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def pid_dead_here(progress: dict[str, Any] | None, *, claiming: bool = False) -> bool:
    """Whether the job's worker is a process of this host that no longer runs. ``claiming``: the caller is
    about to run a task in this process, so a worker with this very pid cannot be running the job (a prefork
    child runs one task at a time)."""
    host, _, pid_text = (progress or {}).get("worker", "").rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if claiming and pid == os.getpid():
        return True
    return pid != os.getpid() and not process_alive(pid)


def worker_gone(
    progress: dict[str, Any] | None,
    started_at: datetime | None,
    *,
    stale_after: float,
    claiming: bool = False,
    now: datetime | None = None,
) -> bool:
    """Whether the worker holding a running job is certainly gone: a dead pid on this host, or no heartbeat
    (nor start) within ``stale_after`` seconds."""
    if pid_dead_here(progress, claiming=claiming):
        return True
    beat = heartbeat_of(progress) or started_at
    return beat is None or beat < (now or timezone.now()) - timedelta(seconds=stale_after)


def worker_lost_message(progress: dict[str, Any] | None, started_at: datetime | None) -> str:
    """What the job's ``error`` says about a lost worker: who it was and when it was last heard of."""
    worker = (progress or {}).get("worker", "?")
    since = heartbeat_of(progress) or started_at
    text = f"worker lost: no heartbeat from {worker} since {since.isoformat() if since else '?'}"
    if pid_dead_here(progress):
        text += " (the process no longer exists)"
    return text


class HeartbeatThread(threading.Thread):
    """Calls ``beat`` every ``interval()`` seconds until stopped; ``beat`` returns False once this attempt
    no longer owns its job (then ``lost`` is set: the work should stop and write nothing more). A beat that
    raises (a database hiccup) is logged and retried at the next one: it must not kill the job's work."""

    def __init__(
        self, name: str, interval: Callable[[], float], beat: Callable[[], bool] | None = None
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self._beat = beat
        self.stopping = threading.Event()
        self.lost = False

    def beat(self) -> bool:
        return self._beat() if self._beat is not None else True

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval()):
                try:
                    if not self.beat():
                        self.lost = True
                except Exception:
                    logger.exception("%s: heartbeat failed", self.name)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join()
