"""Export of approved tags, the files and jobs: write an export to a file atomically, run export jobs.

What an export contains and how its rows are read: annotation.selectors.exports; the file formats:
annotation.io.writers.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.io.writers import EXPORT_FORMATS, WRITERS
from annotation.jobs import export_run_enqueue
from annotation.models import ExportJob, JobStatus
from annotation.selectors.exports import ExportError, approved_tags_export, export_count
from annotation.services.job_claims import queued_job_claim

# The read entry points stay importable from here: an export's callers (command, API, tests) use this module.
__all__ = [
    "ExportError",
    "ExportResult",
    "approved_tags_export",
    "export_count",
    "export_job_create",
    "export_job_file",
    "export_job_run",
    "export_write",
]

logger = logging.getLogger(__name__)


# --- files and jobs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    high_water_mark: dt.datetime


def export_write(
    *,
    path: Path | str,
    file_format: str = "jsonl",
    updated_since: dt.datetime | None = None,
    engine: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write an export to ``path`` atomically (a temporary file renamed at the end)."""
    path = Path(path)
    export = approved_tags_export(file_format=file_format, updated_since=updated_since, engine=engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as out:
            for chunk in export.chunks():
                out.write(chunk)
                if progress is not None:
                    progress(export.rows)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(path=path, rows=export.rows, high_water_mark=export.high_water_mark)


def export_job_file(job: ExportJob) -> Path:
    return Path(settings.EXPORT_DIR) / f"approved-tags-{job.pk}.{WRITERS[job.file_format].extension}"


def export_job_create(*, file_format: str, updated_since: dt.datetime | None = None, user=None) -> ExportJob:
    """Record an export job and run it in the background once the transaction commits."""
    if file_format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {file_format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    with transaction.atomic():
        job = ExportJob.objects.create(file_format=file_format, updated_since=updated_since, created_by=user)
        export_run_enqueue(job.pk)
    return job


def export_job_run(job_id: int) -> ExportJob | None:
    """Run a queued export job. A duplicate delivery finds it no longer queued and does nothing."""
    job, claimed = queued_job_claim(ExportJob, job_id)
    if not claimed:
        return job
    try:
        # No progress writes while it runs: the connection is busy streaming the COPY.
        result = export_write(
            path=export_job_file(job), file_format=job.file_format, updated_since=job.updated_since
        )
    except Exception as exc:  # the job records any failure; the worker stays up
        logger.exception("export job %s failed", job_id)
        ExportJob.objects.filter(id=job_id).update(
            status=JobStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        return ExportJob.objects.get(id=job_id)
    ExportJob.objects.filter(id=job_id).update(
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        rows=result.rows,
        file_path=str(result.path),
        high_water_mark=result.high_water_mark,
    )
    return ExportJob.objects.get(id=job_id)
