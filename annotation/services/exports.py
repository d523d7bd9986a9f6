"""Export of approved tags: a full or incremental stream of every tagged product, in constant memory.

Two engines produce the same records (format: annotation.writers):
- ``copy`` (PostgreSQL): one ``COPY (SELECT …) TO STDOUT`` renders every product record in SQL — tag paths
  from a recursive CTE, tags aggregated per product — and the rows are passed through in 64 KiB chunks.
  Python never builds a per-product object, which keeps the export within a small factor of a raw COPY.
- ``python`` (any database, the embedded SQLite mode): keyset batches of products by id, their tags in one
  query per batch, rendered by the writers.

Incremental sync: ``updated_since`` selects products whose ``tags_updated_at`` is at or after it (every
service that changes approved tags, or a tag's name, path or state, stamps it). The high-water mark to pass
next time is taken *before* the rows are read and moved back to the start of the oldest transaction still
open in the database (and a configured clock-skew margin): a write that was not committed yet when the
export read the table carries a timestamp at or after the mark, so the next export includes it. Records
may repeat across exports; consumers apply them idempotently.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from annotation.models import ExportJob, JobStatus, ModelVersion, Product, ProductTag, Tag
from annotation.services.tags import MAX_DEPTH, tag_paths
from annotation.writers import EXPORT_FORMATS, WRITERS, ExportMeta, RowCounter, format_timestamp, frame

logger = logging.getLogger(__name__)

ENGINES = ("copy", "python")
PYTHON_BATCH_SIZE = 2000


class ExportError(ValueError):
    """A bad export request (unknown format or engine)."""


@dataclass
class ApprovedTagsExport:
    """An export ready to stream: its metadata is fixed, its rows are read while ``chunks`` is iterated."""

    file_format: str
    engine: str
    meta: ExportMeta
    counter: RowCounter = field(default_factory=RowCounter)

    @property
    def writer(self):
        return WRITERS[self.file_format]

    @property
    def content_type(self) -> str:
        return self.writer.content_type

    @property
    def high_water_mark(self) -> dt.datetime:
        return self.meta.high_water_mark

    @property
    def filename(self) -> str:
        stamp = self.meta.high_water_mark.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"approved-tags-{stamp}.{self.writer.extension}"

    @property
    def rows(self) -> int:
        return self.counter.rows

    def chunks(self) -> Iterator[bytes]:
        rows = _copy_rows(self) if self.engine == "copy" else _python_rows(self)
        return frame(self.writer, self.meta, rows, self.counter)


# --- selectors ------------------------------------------------------------------------------------------


def _high_water_mark() -> dt.datetime:
    margin = dt.timedelta(seconds=settings.EXPORT_HIGH_WATER_MARGIN_SECONDS)
    if connection.vendor != "postgresql":
        return timezone.now() - margin
    with connection.cursor() as cursor:
        # Activity statistics are a snapshot per transaction: drop it, the export may run inside one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            """
            SELECT LEAST(statement_timestamp(), (
                SELECT min(xact_start) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND state <> 'idle' AND xact_start IS NOT NULL))
            """
        )
        (mark,) = cursor.fetchone()
    return mark - margin


def _deleted_tags(updated_since: dt.datetime | None) -> tuple[dict, ...]:
    """Tags consumers must remove: deactivated or merged (changed since ``updated_since``)."""
    tags = Tag.objects.filter(is_active=False)
    if updated_since is not None:
        tags = tags.filter(updated_at__gte=updated_since)
    rows = list(tags.order_by("normalized_name").values("id", "name", "merged_into__name", "updated_at"))
    paths = tag_paths(row["id"] for row in rows)
    return tuple(
        {
            "name": row["name"],
            "path": paths.get(row["id"], [row["name"]]),
            "reason": "merged" if row["merged_into__name"] else "deactivated",
            "replaced_by": row["merged_into__name"],
            "changed_at": format_timestamp(row["updated_at"]),
        }
        for row in rows
    )


def _products(updated_since: dt.datetime | None):
    """Products the export includes (before the 'has an active tag or ever had tags' rule)."""
    products = Product.objects.all()
    if updated_since is not None:
        products = products.filter(tags_updated_at__gte=updated_since)
    return products


def export_count(*, file_format: str, updated_since: dt.datetime | None = None) -> int:
    """How many body rows the export will have (products; product-tag lines for CSV): for progress bars."""
    active = ProductTag.objects.filter(product_id=OuterRef("pk"), tag__is_active=True)
    products = _products(updated_since).filter(Q(Exists(active)) | Q(tags_updated_at__isnull=False))
    if file_format != "csv":
        return products.count()
    tag_lines = ProductTag.objects.filter(tag__is_active=True, product__in=_products(updated_since)).count()
    empty = _products(updated_since).filter(tags_updated_at__isnull=False).exclude(Exists(active)).count()
    return tag_lines + empty


def approved_tags_export(
    *, file_format: str = "jsonl", updated_since: dt.datetime | None = None, engine: str | None = None
) -> ApprovedTagsExport:
    """Prepare an export: fixes the high-water mark and the deletion list; rows stream from ``chunks()``."""
    if file_format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {file_format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if engine is None:
        engine = "copy" if connection.vendor == "postgresql" else "python"
    if engine not in ENGINES or (engine == "copy" and connection.vendor != "postgresql"):
        raise ExportError(f"export engine {engine!r} is not available on {connection.vendor}")
    if updated_since is not None and timezone.is_naive(updated_since):
        updated_since = timezone.make_aware(updated_since, dt.UTC)
    mark = _high_water_mark()  # first: anything read afterwards is at or after it, or seen now
    meta = ExportMeta(
        high_water_mark=mark, updated_since=updated_since, deleted_tags=_deleted_tags(updated_since)
    )
    return ApprovedTagsExport(file_format=file_format, engine=engine, meta=meta)


# --- the PostgreSQL engine --------------------------------------------------------------------------------


def _ts(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _copy_sql(export: ApprovedTagsExport) -> tuple[str, list]:
    tag = Tag._meta.db_table
    product = Product._meta.db_table
    product_tag = ProductTag._meta.db_table
    user = get_user_model()._meta.db_table
    model_version = ModelVersion._meta.db_table
    params: list = [MAX_DEPTH]
    where = "TRUE"
    if export.meta.updated_since is not None:
        where = "p.tags_updated_at >= %s"
        params.append(export.meta.updated_since)
    tree = f"""
        WITH RECURSIVE tree(id, path) AS (
            SELECT id, ARRAY[name]::text[] FROM {tag} WHERE parent_id IS NULL
            UNION ALL
            SELECT t.id, tree.path || t.name::text FROM {tag} t JOIN tree ON t.parent_id = tree.id
            WHERE cardinality(tree.path) < %s
        )"""
    # Active approved tags with everything a record names; joined to small tables only, so PostgreSQL can
    # read product_tag in product order and hash-join the rest.
    approved = f"""
        SELECT pt.product_id, t.normalized_name AS sort_key, t.name, COALESCE(tree.path, ARRAY[t.name]::text[]) AS path,
               pt.source, u.username, mv.version, pt.approved_at
        FROM {product_tag} pt
        JOIN {tag} t ON t.id = pt.tag_id AND t.is_active
        LEFT JOIN tree ON tree.id = t.id
        LEFT JOIN {user} u ON u.id = pt.approved_by_id
        LEFT JOIN {model_version} mv ON mv.id = pt.model_version_id"""
    if export.file_format == "csv":
        select = f"""{tree}
        SELECT CASE WHEN a.name IS NULL THEN 'no_tags' ELSE 'tag' END, p.external_id, a.name,
               array_to_string(a.path, ' > '), a.source, a.username, a.version, {_ts("a.approved_at")},
               {_ts("p.updated_at")}, {_ts("p.tags_updated_at")}, NULL
        FROM {product} p LEFT JOIN ({approved}) a ON a.product_id = p.id
        WHERE {where} AND (a.name IS NOT NULL OR p.tags_updated_at IS NOT NULL)
        ORDER BY p.id, a.sort_key"""
        return f"COPY ({select}) TO STDOUT (FORMAT csv)", params
    record = f"""json_build_object(
            'type', 'product', 'external_id', p.external_id, 'updated_at', {_ts("p.updated_at")},
            'tags_updated_at', {_ts("p.tags_updated_at")},
            'tags', COALESCE(json_agg(json_build_object(
                'name', a.name, 'path', a.path, 'source', a.source, 'approved_by', a.username,
                'model_version', a.version, 'approved_at', {_ts("a.approved_at")}) ORDER BY a.sort_key)
                FILTER (WHERE a.name IS NOT NULL), '[]'::json))"""
    select = f"""{tree}
        SELECT {record}
        FROM {product} p LEFT JOIN ({approved}) a ON a.product_id = p.id
        WHERE {where}
        GROUP BY p.id
        HAVING count(a.name) > 0 OR p.tags_updated_at IS NOT NULL
        ORDER BY p.id"""
    # CSV mode with delimiter and quote characters that JSON text never contains raw (PostgreSQL escapes
    # control characters inside JSON strings): every row comes out verbatim, without COPY's text-format
    # backslash escaping.
    return f"COPY ({select}) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')", params


def _copy_rows(export: ApprovedTagsExport) -> Iterator[bytes]:
    sql, params = _copy_sql(export)
    with connection.cursor() as cursor, cursor.cursor.copy(sql, params) as copy:
        # libpq hands over one row per read: pass them on as they are, framing batches them.
        yield from copy


# --- the portable engine ---------------------------------------------------------------------------------


def _python_records(export: ApprovedTagsExport) -> Iterator[dict]:
    updated_since = export.meta.updated_since
    products = _products(updated_since)
    if updated_since is None:
        products = products.filter(
            Q(Exists(ProductTag.objects.filter(product_id=OuterRef("pk")))) | Q(tags_updated_at__isnull=False)
        )
    tags = {row[0]: row[1:] for row in Tag.objects.values_list("id", "name", "normalized_name", "is_active")}
    paths: dict[int, list[str]] = {}
    after = 0
    while True:
        batch = list(
            products.filter(id__gt=after)
            .order_by("id")
            .values_list("id", "external_id", "updated_at", "tags_updated_at")[:PYTHON_BATCH_SIZE]
        )
        if not batch:
            return
        after = batch[-1][0]
        approved: dict[int, list] = {}
        for row in ProductTag.objects.filter(
            product_id__in=[b[0] for b in batch], tag__is_active=True
        ).values_list(
            "product_id", "tag_id", "source", "approved_by__username", "model_version__version", "approved_at"
        ):
            approved.setdefault(row[0], []).append(row[1:])
        missing = {row[0] for rows in approved.values() for row in rows} - paths.keys()
        paths.update(tag_paths(missing))
        for product_id, external_id, updated_at, tags_updated_at in batch:
            rows = sorted(approved.get(product_id, []), key=lambda r: tags[r[0]][1])
            if not rows and tags_updated_at is None:
                continue  # only deactivated tags and never stamped: nothing to say about it
            yield {
                "external_id": external_id,
                "updated_at": format_timestamp(updated_at),
                "tags_updated_at": format_timestamp(tags_updated_at),
                "tags": [
                    {
                        "name": tags[tag_id][0],
                        "path": paths.get(tag_id, [tags[tag_id][0]]),
                        "source": source,
                        "approved_by": username,
                        "model_version": version,
                        "approved_at": format_timestamp(approved_at),
                    }
                    for tag_id, source, username, version, approved_at in rows
                ],
            }


def _python_rows(export: ApprovedTagsExport) -> Iterator[bytes]:
    writer = export.writer
    for record in _python_records(export):
        yield from writer.render(record)


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
    from annotation import tasks

    with transaction.atomic():
        job = ExportJob.objects.create(file_format=file_format, updated_since=updated_since, created_by=user)
        transaction.on_commit(lambda: tasks.export_run.delay(job.pk))
    return job


def export_job_run(job_id: int) -> ExportJob | None:
    """Run a queued export job. A duplicate delivery finds it no longer queued and does nothing."""
    claimed = ExportJob.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info("export job %s is not queued (already run or missing); skipping", job_id)
        return ExportJob.objects.filter(id=job_id).first()
    job = ExportJob.objects.get(id=job_id)
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
