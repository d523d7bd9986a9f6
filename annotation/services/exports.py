"""Export of approved tags, the files and jobs: write an export to a file atomically, run export jobs.

What an export contains and how its rows are read: annotation.selectors.exports; the file formats:
annotation.io.writers.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.io.writers import EXPORT_FORMATS, WRITERS
from annotation.jobs import export_run_enqueue
from annotation.models import ExportJob, JobStatus
from annotation.selectors.exports import ExportError, approved_tags_export, export_count
from annotation.services.job_claims import JobHeartbeat, JobLost, queued_job_lease

# The read entry points stay importable from here: an export's callers (command, API, tests) use this module.
__all__ = [
    "ExportError",
    "ExportResult",
    "approved_tags_export",
    "export_count",
    "export_job_create",
    "export_job_file",
    "export_job_partials",
    "export_job_run",
    "export_write",
]


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
    """Write an export to ``path`` atomically (a temporary file renamed at the end). ``progress`` gets the
    rows written so far after each chunk; an exception it raises stops the export (nothing is renamed)."""
    path = Path(path)
    export = approved_tags_export(file_format=file_format, updated_since=updated_since, engine=engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary file per process: a hung attempt that wakes after the sweeper requeued its job cannot
    # write into, or remove, the file of the attempt that replaced it.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
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


def export_job_partials(job: ExportJob) -> list[Path]:
    """Temporary files that attempts of ``job`` killed while writing left behind."""
    final = export_job_file(job)
    return sorted(final.parent.glob(f".{final.name}.*.partial"))


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
    job, lease = queued_job_lease(ExportJob, job_id)
    if lease is None:
        return job
    # The heartbeat comes from a thread with its own connection: this one is busy streaming the COPY, so
    # the export has no progress points at which to write it.
    with JobHeartbeat(lease) as heartbeat:

        def stop_when_lost(_rows: int) -> None:
            if heartbeat.lost:
                raise JobLost(f"export job {job_id} attempt {lease.attempt} lost its claim")

        done, result = lease.run(
            lambda: export_write(
                path=export_job_file(job),
                file_format=job.file_format,
                updated_since=job.updated_since,
                progress=stop_when_lost,
            )
        )
    if not done:
        return ExportJob.objects.get(id=job_id)
    lease.finish(
        JobStatus.SUCCEEDED,
        rows=result.rows,
        file_path=str(result.path),
        high_water_mark=result.high_water_mark,
    )
    return ExportJob.objects.get(id=job_id)
