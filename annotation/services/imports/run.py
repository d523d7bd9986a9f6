"""Catalog import: stream a file, upsert products by external id in batches, record the merchant's tags.

Rules:
- Upsert by external id. Re-importing the same file changes nothing: rows are compared by content hash
  and unchanged ones are not written at all. A changed row updates the product's fields (and marks it
  for a suggestion refresh); its approved tags, suggestions and review events stay as they are.
- Tags in the file become approved tags with source ``import``; unknown names create Tag rows. Import
  tags are additive, and only products still waiting for review receive them: once a person has
  reviewed a product, its tags are that person's decision and a file does not overrule it.
- A repeated id inside one file: the later row wins, as a later import would. Each repeat is counted
  (``rows_duplicate``) and reported as a warning naming its line (and the earlier one's).
- Rejected rows are reported with line, field and reason; the good rows of the same file are imported.
  A file that is not JSONL/CSV at all is refused before anything is written.

PostgreSQL path: new products go in with one COPY straight into the product table per batch; changed
ones through a COPY into a temporary staging table and one INSERT … ON CONFLICT DO UPDATE; the file's
tags through a staging table and one INSERT … SELECT … ON CONFLICT DO NOTHING. On large files the
parsing and validation run in a forked parser process that hands over ready-to-COPY batches, so the
Python work and PostgreSQL's work overlap on two cores. Other databases (the embedded SQLite) take
Django's bulk operations in-process.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from annotation.io.readers import (
    FileFormatError,
    RowError,
    detect_format,
)
from annotation.jobs import import_run_enqueue
from annotation.models import ImportJob, JobStatus
from annotation.services.imports.orm_writer import write_products_generic, write_tags_generic
from annotation.services.imports.parse import (
    PARALLEL_MIN_BYTES,
    _can_fork_parser,
    parse_batches,
    parse_batches_in_subprocess,
)
from annotation.services.imports.pg_writer import _WrittenIds, write_batch_postgres
from annotation.services.job_claims import queued_job_lease
from annotation.services.suggestions import suggestions_refresh_request
from annotation.taxonomy.resolver import TagResolver

# progress(bytes_read, total_bytes, stats)
ImportProgress = Callable[[int, int, "ImportStats"], None]


@dataclass(slots=True)
class ImportStats:
    rows_total: int = 0
    rows_ok: int = 0
    rows_rejected: int = 0
    products_created: int = 0
    products_updated: int = 0
    tags_added: int = 0
    rows_duplicate: int = 0  # rows (counted in rows_ok) whose id an earlier row of the file had
    # Repeats merged with their earlier row before writing (same batch): neither created, updated nor
    # unchanged. A repeat in a later batch is written again and counts as updated or unchanged.
    rows_merged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)

    @property
    def products_unchanged(self) -> int:
        return self.rows_ok - self.rows_merged - self.products_created - self.products_updated


# --- The import ---------------------------------------------------------------------------------------


def import_products(
    path: Path | str,
    *,
    file_format: str | None = None,
    ignore_tags: bool = False,
    batch_size: int | None = None,
    progress: ImportProgress | None = None,
    parallel: bool | None = None,
    display_name: str | None = None,
) -> ImportStats:
    """Import one catalog file. Raises FileFormatError (nothing written) if it is not JSONL/CSV.

    ``parallel``: parse in a separate process (PostgreSQL only); default: for files of
    PARALLEL_MIN_BYTES or more, where the platform allows it. ``display_name``: the file's name as the
    user knows it (an upload's own name), for messages.
    """
    path = Path(path)
    file_format = detect_format(path, file_format, display_name=display_name)
    batch_size = batch_size or settings.IMPORT_BATCH_SIZE
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    total_bytes = path.stat().st_size
    use_copy = connection.vendor == "postgresql"
    if parallel is None:
        parallel = use_copy and total_bytes >= PARALLEL_MIN_BYTES and _can_fork_parser()
    if parallel and not use_copy:
        raise ValueError("parallel parsing needs PostgreSQL (it hands COPY-encoded batches over)")
    options = {
        "batch_size": batch_size,
        "max_errors": settings.IMPORT_MAX_ERRORS_KEPT,
        "read_tags": not ignore_tags,
    }
    if parallel:
        batches = parse_batches_in_subprocess(path, file_format, **options)
    else:
        batches = parse_batches(path, file_format, encode=use_copy, **options)

    stats = ImportStats()
    resolver = None if ignore_tags else TagResolver()
    written = _WrittenIds.for_catalog() if use_copy else None
    try:
        for batch in batches:
            stats.rows_total += batch.rows_total
            stats.rows_rejected += batch.rows_rejected
            stats.rows_ok += batch.rows_total - batch.rows_rejected
            stats.errors.extend(batch.errors)
            stats.rows_duplicate += batch.rows_duplicate
            stats.rows_merged += batch.rows_merged
            stats.warnings.extend(batch.warnings)
            if batch.size:
                with transaction.atomic():
                    if use_copy:
                        created, updated, tags_added = write_batch_postgres(batch, resolver, written)
                        stats.tags_added += tags_added
                    else:
                        created, updated, ids = write_products_generic(batch.rows)
                        if resolver is not None:
                            stats.tags_added += write_tags_generic(batch.rows, ids, resolver)
                stats.products_created += created
                stats.products_updated += updated
            if progress:
                progress(batch.bytes_read, total_bytes, stats)
    finally:
        batches.close()
    if progress:
        progress(total_bytes, total_bytes, stats)
    return stats


# --- Import jobs (REST upload → background task) ------------------------------------------------------


def import_job_create(*, source, filename: str, ignore_tags: bool = False, user=None) -> ImportJob:
    """Store the uploaded file, record the job, enqueue it after commit. Refuses non-JSONL/CSV at once."""
    directory = Path(settings.IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = Path(filename).suffix.lower() or ".dat"
    target = directory / f"{uuid.uuid4().hex}{suffix}"
    with target.open("wb") as out:
        if hasattr(source, "chunks"):
            for chunk in source.chunks():
                out.write(chunk)
        else:
            shutil.copyfileobj(source, out)
    try:
        file_format = detect_format(target, display_name=Path(filename).name)
    except FileFormatError:
        target.unlink(missing_ok=True)
        raise
    with transaction.atomic():
        job = ImportJob.objects.create(
            source_name=filename[:500],
            file_path=str(target),
            file_format=file_format,
            ignore_tags=ignore_tags,
            created_by=user,
        )
        import_run_enqueue(job.id)
    return job


def import_job_run(job_id: int) -> ImportJob | None:
    """Run a queued import job. A duplicate delivery finds the job no longer queued and does nothing."""
    job, lease = queued_job_lease(ImportJob, job_id)
    if lease is None:
        return job

    # The heartbeat rides on the progress write after each batch (IMPORT_BATCH_SIZE rows, well under a
    # second at the import's rates), not on a thread: a large file is parsed in a forked process, and
    # forking while another thread may hold a lock (logging's, the database driver's) can hang the child.
    def report(_done: int, _total: int, stats: ImportStats) -> None:
        lease.beat_or_stop(
            rows_total=stats.rows_total,
            rows_ok=stats.rows_ok,
            rows_rejected=stats.rows_rejected,
            products_created=stats.products_created,
            products_updated=stats.products_updated,
        )

    done, stats = lease.run(
        lambda: import_products(
            job.file_path,
            file_format=job.file_format,
            ignore_tags=job.ignore_tags,
            progress=report,
            display_name=job.source_name,
        )
    )
    if not done:
        return ImportJob.objects.get(id=job_id)
    lease.finish(
        JobStatus.SUCCEEDED,
        rows_total=stats.rows_total,
        rows_ok=stats.rows_ok,
        rows_rejected=stats.rows_rejected,
        products_created=stats.products_created,
        products_updated=stats.products_updated,
        # Warnings (repeated ids, marked "warning": true) follow the errors; the job has no column of its
        # own for the repeat count, which is the number of those warnings (up to IMPORT_MAX_ERRORS_KEPT).
        errors=[problem.as_dict() for problem in [*stats.errors, *stats.warnings]],
    )
    suggestions_refresh_request()  # even when the job was lost at the end: the products were written
    return ImportJob.objects.get(id=job_id)
