"""Uploaded import files are kept for IMPORT_FILE_RETENTION_HOURS after their job ends, then removed.

Beat runs ``import_files_remove_expired`` every IMPORT_FILE_SWEEP_SECONDS (task
``annotation.tasks.import_files_remove_expired``; the embedded worker runs beat too). A file is removed
when it is older than the retention time (by its modification time, set at upload), no job that is
still ``queued`` or ``running`` reads it, and no job that ended within the retention time names it.
A file no job names (an upload whose request failed after writing it) goes by its age alone. The job's
row stays, with its counts and errors; only the bytes go.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from annotation.models import ImportJob, JobStatus

logger = logging.getLogger(__name__)


def import_files_remove_expired(*, now: dt.datetime | None = None) -> list[str]:
    """Remove the uploaded import files past their retention time; returns the names removed."""
    directory = Path(settings.IMPORT_DIR)
    if not directory.is_dir():
        return []
    now = now or timezone.now()
    cutoff = now - dt.timedelta(hours=settings.IMPORT_FILE_RETENTION_HOURS)
    # Names, not paths: IMPORT_DIR may be spelled differently (a symlink, a relative setting) between
    # the process that stored a file and this one.
    kept = {
        Path(path).name
        for path in ImportJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).values_list(
            "file_path", flat=True
        )
    }
    kept.update(
        Path(path).name
        for path in ImportJob.objects.filter(finished_at__gte=cutoff).values_list("file_path", flat=True)
    )
    removed: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False) or entry.name in kept:
                continue
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff.timestamp():
                continue
            try:
                os.unlink(entry.path)
            except FileNotFoundError:  # another sweep got there first
                continue
            removed.append(entry.name)
    if removed:
        logger.info(
            "removed %d import file(s) older than %s hours",
            len(removed),
            settings.IMPORT_FILE_RETENTION_HOURS,
        )
    return removed
