"""Export of approved tags, the read side: a full or incremental stream of every tagged product, in constant memory.

Two engines produce the same records (formats: annotation.io.writers; files and jobs:
annotation.services.exports):
- ``copy`` (PostgreSQL): one ``COPY (SELECT …) TO STDOUT`` renders every product record in SQL — tag paths
  from a recursive CTE, tags aggregated per product — and the rows are passed through in 64 KiB chunks.
  Python never builds a per-product object, which keeps the export within a small factor of a raw COPY.
- ``python`` (any database, the embedded SQLite mode): keyset batches of products by id, their tags in one
  query per batch, rendered by the writers.

One snapshot: everything an export reads — the deleted tags of its head, the tag, approver and version
lookups, every product and its tags — comes from one transaction that sees the database as it was at one
moment (:func:`export_snapshot`): ``REPEATABLE READ`` on PostgreSQL (``READ ONLY`` for the portable engine;
the COPY engine fills its temporary lookup tables first, then turns the transaction ``READ ONLY``), a
deferred read transaction on SQLite, whose WAL mode gives a reader the database as of its first read while
the worker keeps writing. Imports and reviews that commit while an export streams are simply not in it:
a product's record is always the tags it had at that moment, never a mix (issue 14: without it, tags
created after the lookups were read vanished from records streamed later).

Incremental sync: ``updated_since`` selects products whose ``tags_updated_at`` is at or after it (every
service that changes approved tags, or a tag's name, path or state, stamps it). The high-water mark to pass
next time is taken *before* the snapshot and moved back to the start of the oldest transaction still open
in the database (and a configured clock-skew margin): a write the snapshot does not see was still open
when the mark was taken (it started at or after that oldest start) or began afterwards, so its timestamp
is at or after the mark and the next export includes it. Records may repeat across exports; consumers
apply them idempotently. (SQLite cannot list open transactions: there the mark is the clock minus the
margin, and the embedded mode's write transactions are short.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from annotation.io.writers import (
    EXPORT_FORMATS,
    PATH_SEPARATOR,
    WRITERS,
    ExportMeta,
    RowCounter,
    csv_field,
    csv_line,
    format_timestamp,
    frame,
    tag_head,
)
from annotation.models import ExportJob, ModelVersion, Product, ProductTag, Tag
from annotation.selectors.taxonomy import MAX_DEPTH, tag_paths
from annotation.taxonomy.resolver import TagResolver

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
        """The export's bytes, read in one snapshot that stays open while they are iterated."""
        # The COPY engine writes its temporary lookup tables, then turns the transaction read-only itself.
        with export_snapshot(read_only=self.engine != "copy") as owned:
            self.meta = dataclasses.replace(self.meta, deleted_tags=_deleted_tags(self.meta.updated_since))
            rows = _copy_rows(self, snapshot_owned=owned) if self.engine == "copy" else _python_rows(self)
            yield from frame(self.writer, self.meta, rows, self.counter)


@contextmanager
def export_snapshot(*, read_only: bool = True) -> Iterator[bool]:
    """One consistent view of the database for every read inside; yields whether it opened the snapshot.

    Inside a caller's transaction (a test, an atomic block) it cannot choose the isolation level and
    reads in that transaction as it is."""
    if connection.in_atomic_block:
        yield False
        return
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" + (", READ ONLY" if read_only else "")
                )
            yield True
        return
    if connection.vendor == "sqlite":
        # Django's atomic() would BEGIN IMMEDIATE here and hold the write lock for the whole export; a
        # deferred transaction only reads, and sees the database as of its first read (WAL mode).
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield True
        finally:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")  # nothing was written: ends the read transaction
        return
    yield False


# --- reads -----------------------------------------------------------------------------------------------


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
    """Tags consumers must remove: deactivated or merged (changed since ``updated_since``).

    A merged tag is replaced by the tag its name resolves to (annotation.taxonomy.resolver, rule 3)."""
    tags = Tag.objects.filter(is_active=False)
    if updated_since is not None:
        tags = tags.filter(updated_at__gte=updated_since)
    rows = list(tags.order_by("normalized_name").values("id", "name", "merged_into_id", "updated_at"))
    paths = tag_paths(row["id"] for row in rows)
    merged = TagResolver(preload=False).canonical(
        row["id"] for row in rows if row["merged_into_id"] is not None
    )
    replaced_by = {tag_id: tag.name for tag_id, tag in merged.items()}
    return tuple(
        {
            "name": row["name"],
            "path": paths.get(row["id"], [row["name"]]),
            "reason": "merged" if row["merged_into_id"] is not None else "deactivated",
            "replaced_by": replaced_by.get(row["id"]),
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


def export_count(*, updated_since: dt.datetime | None = None) -> int:
    """About how many product records an export writes, for progress bars: the products whose tags were
    ever stamped (one scan; the exact count would probe every product's tags and cost as much again)."""
    return _products(updated_since).filter(tags_updated_at__isnull=False).count()


def export_job_queryset() -> QuerySet[ExportJob]:
    """Export jobs, newest first, with who started them joined (the REST list and detail, the exports page)."""
    return ExportJob.objects.select_related("created_by")


def approved_tags_export(
    *, file_format: str = "jsonl", updated_since: dt.datetime | None = None, engine: str | None = None
) -> ApprovedTagsExport:
    """Prepare an export: fixes the high-water mark; the deletion list and the rows stream from ``chunks()``."""
    if file_format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {file_format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if engine is None:
        engine = "copy" if connection.vendor == "postgresql" else "python"
    if engine not in ENGINES or (engine == "copy" and connection.vendor != "postgresql"):
        raise ExportError(f"export engine {engine!r} is not available on {connection.vendor}")
    if updated_since is not None and timezone.is_naive(updated_since):
        updated_since = timezone.make_aware(updated_since, dt.UTC)
    mark = _high_water_mark()  # before the snapshot: what it does not see is at or after the mark
    # The deleted tags are read with the rows, in the snapshot ``chunks()`` opens.
    meta = ExportMeta(high_water_mark=mark, updated_since=updated_since, deleted_tags=())
    return ApprovedTagsExport(file_format=file_format, engine=engine, meta=meta)


# --- lookups shared by both engines ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lookups:
    """Per-export maps from ids to what a record says: tags (active only, with their paths), approvers and
    model versions. Read once; a taxonomy has thousands of tags, not millions."""

    tags: dict[int, tuple[str, list[str]]]  # active tag id -> (canonical name, path root first)
    users: dict[int, str]
    versions: dict[int, str]


def _lookups() -> _Lookups:
    rows = {
        tag_id: (name, parent_id, active)
        for tag_id, name, parent_id, active in Tag.objects.values_list("id", "name", "parent_id", "is_active")
    }

    def path(tag_id: int) -> list[str]:
        names: list[str] = []
        seen: set[int] = set()
        current: int | None = tag_id
        while current is not None and current not in seen and current in rows and len(names) < MAX_DEPTH:
            seen.add(current)
            names.append(rows[current][0])
            current = rows[current][1]
        return names[::-1]

    return _Lookups(
        tags={tag_id: (name, path(tag_id)) for tag_id, (name, _, active) in rows.items() if active},
        users=dict(get_user_model().objects.values_list("id", "username")),
        versions=dict(ModelVersion.objects.values_list("id", "version")),
    )


# --- the PostgreSQL engine --------------------------------------------------------------------------------
# The lookups go into indexed temporary tables, so PostgreSQL reads product_tag in product order through its
# product index, fetches each tag/approver/version fragment through a memoized index probe, and aggregates
# product by product: no sort, no hash of the big tables, rows leave as they are produced. Each tag's JSON
# head (name and path) is rendered once, by Python, for the whole export.

_LOOKUP_TABLES = {
    "export_tag": "id bigint PRIMARY KEY, json text NOT NULL, csv text NOT NULL",
    "export_user": "id bigint PRIMARY KEY, json text NOT NULL, csv text NOT NULL",
    "export_version": "id bigint PRIMARY KEY, json text NOT NULL, csv text NOT NULL",
}
_BINARY_HEADER = 19  # "PGCOPY\n\377\r\n\0" + flags + header extension length
_BINARY_FIELD = 6  # per row: int16 field count, int32 field length
_BINARY_TRAILER = b"\xff\xff"


def _lookup_tables_load(cursor, lookups: _Lookups) -> None:
    """Each lookup rendered once, as the JSON and the CSV text a record embeds."""
    for table, columns in _LOOKUP_TABLES.items():
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
        # ON COMMIT DROP: the export's own snapshot ends read-only, where DROP is refused.
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({columns}) ON COMMIT DROP")
    with cursor.copy("COPY export_tag (id, json, csv) FROM STDIN") as copy:
        for tag_id, (name, path) in lookups.tags.items():
            copy.write_row((tag_id, tag_head(name, path), csv_line([name, PATH_SEPARATOR.join(path)])))
    for table, values in (("export_user", lookups.users), ("export_version", lookups.versions)):
        with cursor.copy(f"COPY {table} (id, json, csv) FROM STDIN") as copy:
            for key, name in values.items():
                copy.write_row((key, json.dumps(name, ensure_ascii=False), csv_field(name)))
    cursor.execute("ANALYZE export_tag, export_user, export_version")


def _lookup_tables_drop(cursor) -> None:
    cursor.execute("DROP TABLE IF EXISTS pg_temp.export_tag, pg_temp.export_user, pg_temp.export_version")


def _ts(column: str) -> str:
    """A timestamptz as export text: PostgreSQL's JSON rendering, unquoted (see writers.format_timestamp).

    The quotes are trimmed as text: ``#>> '{}'`` would parse the JSON again, for every tag line."""
    return f"btrim(to_json({column})::text, '\"')"


def _csv_formula_guard_sql(column: str) -> str:
    """Step 1 of ``annotation.io.writers.csv_field`` in SQL: a ``'`` before text a spreadsheet would run
    as a formula (first character one of writers.CSV_FORMULA_LEADERS: = + - @ tab carriage-return)."""
    return (
        f"CASE WHEN left({column}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
        f"THEN '''' || {column} ELSE {column} END"
    )


def _csv_field_sql(column: str) -> str:
    """Step 2 of ``annotation.io.writers.csv_field`` in SQL: quote text holding one of
    writers.CSV_QUOTE_TRIGGERS (comma, double quote, line feed, carriage return), doubling its quotes."""
    return (
        f"CASE WHEN strpos({column}, ',') > 0 OR strpos({column}, '\"') > 0 "
        f"OR strpos({column}, chr(10)) > 0 OR strpos({column}, chr(13)) > 0 "
        f"THEN '\"' || replace({column}, '\"', '\"\"') || '\"' ELSE {column} END"
    )


def _copy_sql(export: ApprovedTagsExport) -> tuple[str, list]:
    """One text column per product: its JSON record, or its CSV lines."""
    product = Product._meta.db_table
    product_tag = ProductTag._meta.db_table
    params: list = []
    where = "TRUE"
    if export.meta.updated_since is not None:
        where = "p.tags_updated_at >= %s"
        params.append(export.meta.updated_since)
    joins = f"""
            FROM {product_tag} pt
            JOIN export_tag t ON t.id = pt.tag_id
            LEFT JOIN export_user u ON u.id = pt.approved_by_id
            LEFT JOIN export_version v ON v.id = pt.model_version_id"""
    if export.file_format == "csv":
        # Each tag line is prefix || fragment || suffix, where prefix and suffix are the product's own
        # fields: the fragments are joined with a control character that no field contains, then each
        # joint becomes suffix || newline || prefix — one replace per product instead of a join per line.
        select = f"""
        SELECT CASE WHEN a.fragments IS NULL
            THEN concat('no_tags,', x.id, ',,,,,,,', x.times, ',')
            ELSE concat('tag,', x.id, ',', replace(a.fragments, chr(31), concat(',', x.times, ',', chr(10), 'tag,', x.id, ',')),
                        ',', x.times, ',')
            END
        FROM {product} p
        LEFT JOIN (
            SELECT pt.product_id,
                   string_agg(concat(t.csv, ',', pt.source, ',', u.csv, ',', v.csv, ',', {_ts("pt.approved_at")}),
                              chr(31)) AS fragments
            {joins}
            GROUP BY pt.product_id
        ) a ON a.product_id = p.id
        -- OFFSET 0 keeps the subquery: each product's own fields are rendered once, not once per use
        CROSS JOIN LATERAL (
            SELECT {_csv_field_sql("e.value")} AS id,
                   concat({_ts("p.updated_at")}, ',', {_ts("p.tags_updated_at")}) AS times
            FROM (SELECT {_csv_formula_guard_sql("p.external_id")} AS value) e
            OFFSET 0
        ) x
        WHERE {where} AND (a.fragments IS NOT NULL OR p.tags_updated_at IS NOT NULL)
        ORDER BY p.id"""
    else:
        select = f"""
        SELECT concat('{{"type":"product","external_id":', to_json(p.external_id), ',"updated_at":',
                      to_json(p.updated_at), ',"tags_updated_at":', COALESCE(to_json(p.tags_updated_at)::text, 'null'),
                      ',"tags":[', a.tags, ']}}')
        FROM {product} p
        LEFT JOIN (
            SELECT pt.product_id,
                   string_agg(concat(t.json, pt.source, '","approved_by":', COALESCE(u.json, 'null'),
                                     ',"model_version":', COALESCE(v.json, 'null'),
                                     ',"approved_at":', to_json(pt.approved_at), '}}'), ',') AS tags
            {joins}
            GROUP BY pt.product_id
        ) a ON a.product_id = p.id
        WHERE {where} AND (a.tags IS NOT NULL OR p.tags_updated_at IS NOT NULL)
        ORDER BY p.id"""
    # Binary COPY: each row arrives as its bytes behind a fixed 6-byte prefix, with no text-format escaping.
    return f"COPY ({select}) TO STDOUT (FORMAT binary)", params


def _copy_rows(export: ApprovedTagsExport, *, snapshot_owned: bool) -> Iterator[bytes]:
    lookups = _lookups()
    sql, params = _copy_sql(export)
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        _lookup_tables_load(cursor, lookups)
        if snapshot_owned:
            cursor.execute("SET TRANSACTION READ ONLY")  # the tables go at commit
        try:
            with cursor.copy(sql, params) as copy:
                # libpq hands over one row per read; the first read also carries the file header and the
                # last one is the trailer (both may come alone).
                header = True
                for message in copy:
                    if header:
                        message, header = message[_BINARY_HEADER:], False
                    if len(message) < _BINARY_FIELD or message[:2] == _BINARY_TRAILER:
                        continue
                    yield message[_BINARY_FIELD:]
        finally:
            try:
                if not snapshot_owned:
                    _lookup_tables_drop(cursor)
            except DatabaseError:  # an aborted transaction: the temporary tables go with the session
                logger.debug("export lookup tables left for the session to drop", exc_info=True)


# --- the portable engine ---------------------------------------------------------------------------------


def _python_records(export: ApprovedTagsExport) -> Iterator[dict]:
    updated_since = export.meta.updated_since
    products = _products(updated_since)
    if updated_since is None:
        products = products.filter(
            Q(Exists(ProductTag.objects.filter(product_id=OuterRef("pk")))) | Q(tags_updated_at__isnull=False)
        )
    lookups = _lookups()
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
        for row in (
            ProductTag.objects.filter(product_id__in=[b[0] for b in batch], tag_id__in=lookups.tags.keys())
            .order_by("product_id", "tag_id")
            .values_list(
                "product_id", "tag_id", "source", "approved_by_id", "model_version_id", "approved_at"
            )
        ):
            approved.setdefault(row[0], []).append(row[1:])
        for product_id, external_id, updated_at, tags_updated_at in batch:
            rows = approved.get(product_id, [])
            if not rows and tags_updated_at is None:
                continue  # only deactivated tags and never stamped: nothing to say about it
            yield {
                "external_id": external_id,
                "updated_at": format_timestamp(updated_at),
                "tags_updated_at": format_timestamp(tags_updated_at),
                "tags": [
                    {
                        "name": lookups.tags[tag_id][0],
                        "path": lookups.tags[tag_id][1],
                        "source": source,
                        "approved_by": lookups.users.get(user_id),
                        "model_version": lookups.versions.get(version_id),
                        "approved_at": format_timestamp(approved_at),
                    }
                    for tag_id, source, user_id, version_id, approved_at in rows
                ],
            }


def _python_rows(export: ApprovedTagsExport) -> Iterator[bytes]:
    render = export.writer.render
    for record in _python_records(export):
        yield render(record)
