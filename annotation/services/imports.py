"""Catalog import: stream a file, upsert products by external id in batches, record the merchant's tags.

Rules:
- Upsert by external id. Re-importing the same file changes nothing: rows are compared by content hash
  and unchanged ones are not written at all. A changed row updates the product's fields (and marks it
  for a suggestion refresh); its approved tags, suggestions and review events stay as they are.
- Tags in the file become approved tags with source ``import``; unknown names create Tag rows. Import
  tags are additive, and only products still waiting for review receive them: once a person has
  reviewed a product, its tags are that person's decision and a file does not overrule it.
- A repeated id inside one file: the later row wins, as a later import would.
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

import logging
import multiprocessing
import queue as queue_module
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation.io.readers import (
    FileFormatError,
    ProductRow,
    RowError,
    copy_text,
    detect_format,
    encoded_content,
    open_reader,
)
from annotation.models import ImportJob, JobStatus, Product, ProductTag, ReviewStatus, TagSource
from annotation.taxonomy.resolver import TagResolver

logger = logging.getLogger(__name__)

# progress(bytes_read, total_bytes, stats)
ImportProgress = Callable[[int, int, "ImportStats"], None]

# Files at least this large are parsed in a separate process (below it, starting one costs more than
# it saves).
PARALLEL_MIN_BYTES = 4 << 20
# Parsed batches waiting for the writer: bounds the pipeline's memory.
PARALLEL_QUEUE_BATCHES = 3


@dataclass(slots=True)
class ImportStats:
    rows_total: int = 0
    rows_ok: int = 0
    rows_rejected: int = 0
    products_created: int = 0
    products_updated: int = 0
    tags_added: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def products_unchanged(self) -> int:
        return self.rows_ok - self.products_created - self.products_updated


@dataclass(slots=True)
class ParsedBatch:
    """One batch of validated rows as the parser hands it to the writer.

    ``rows`` for the generic writer; for PostgreSQL the rows arrive already encoded as COPY text lines
    (cheap to pass between processes, nothing left to format in the writer).
    """

    rows_total: int = 0
    rows_rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    bytes_read: int = 0
    rows: list[ProductRow] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    # One COPY text line per row, newline-terminated, in external_ids order: the product table's data
    # columns (_PRODUCT_COLUMNS), the content hash last. One bytes object: cheap to hand between processes.
    copy_payload: bytes = b""
    # (index in the batch, tag names) for rows that carry tags.
    tag_rows: list[tuple[int, list[str]]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.rows) or len(self.external_ids)

    def copy_lines(self) -> list[bytes]:
        """The payload's lines, without their newlines."""
        lines = self.copy_payload.split(b"\n")
        lines.pop()  # after the last newline
        return lines


# --- Parsing (in-process or in the parser process) ----------------------------------------------------


def encode_copy_line(row: ProductRow) -> bytes:
    """The row's data columns (_PRODUCT_COLUMNS order: external id, content, content hash) as a COPY line."""
    content = encoded_content(row)
    return b"%s\t%s\t%s\n" % (
        copy_text(row.external_id).encode(),
        content,
        sha256(content).hexdigest().encode(),
    )


def _finish_batch(
    batch: ParsedBatch, rows: dict[str, ProductRow], encode: bool, read_tags: bool
) -> ParsedBatch:
    if not encode:
        batch.rows = list(rows.values())
        return batch
    batch.external_ids = list(rows)
    batch.copy_payload = b"".join(map(encode_copy_line, rows.values()))
    if read_tags:
        batch.tag_rows = [(index, row.tags) for index, row in enumerate(rows.values()) if row.tags]
    return batch


def parse_batches(
    path: Path,
    file_format: str,
    *,
    batch_size: int,
    max_errors: int,
    encode: bool,
    read_tags: bool = True,
) -> Iterator[ParsedBatch]:
    """Read and validate a catalog file into batches of at most ``batch_size`` distinct ids.

    Keeps at most ``max_errors`` error details over the whole file (every rejected row is counted).
    """
    errors_kept = 0
    with path.open("rb") as stream:
        reader = open_reader(file_format, stream, read_tags=read_tags)
        batch = ParsedBatch()
        rows: dict[str, ProductRow] = {}
        for result in reader.rows():
            batch.rows_total += 1
            if type(result) is list:
                batch.rows_rejected += 1
                kept = result[: max(0, max_errors - errors_kept)]
                batch.errors.extend(kept)
                errors_kept += len(kept)
                continue
            # A repeated id: the later row wins (and moves to the end, so it is written after).
            rows.pop(result.external_id, None)
            rows[result.external_id] = result
            if len(rows) >= batch_size:
                batch.bytes_read = stream.tell()
                yield _finish_batch(batch, rows, encode, read_tags)
                batch, rows = ParsedBatch(), {}
        batch.bytes_read = stream.tell()
        if rows or batch.rows_total:
            yield _finish_batch(batch, rows, encode, read_tags)


@dataclass(frozen=True, slots=True)
class _ParserFailure:
    format_error: bool
    message: str


def _parser_process_main(out: multiprocessing.Queue, path: Path, file_format: str, options: dict) -> None:
    try:
        for batch in parse_batches(path, file_format, encode=True, **options):
            out.put(batch)
        out.put(None)
    except FileFormatError as exc:
        out.put(_ParserFailure(True, str(exc)))
    except BaseException as exc:  # reported to the writer, which raises it in the importing process
        out.put(_ParserFailure(False, "".join(traceback.format_exception(exc))))


def _can_fork_parser() -> bool:
    # A daemonic process (a Celery prefork worker) may not have children; fork keeps Django set up.
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def parse_batches_in_subprocess(path: Path, file_format: str, **options) -> Iterator[ParsedBatch]:
    """``parse_batches`` run in a forked process, at most PARALLEL_QUEUE_BATCHES batches ahead.

    The child only reads the file and never touches the database connection it inherits.
    """
    context = multiprocessing.get_context("fork")
    batches: multiprocessing.Queue = context.Queue(maxsize=PARALLEL_QUEUE_BATCHES)
    process = context.Process(
        target=_parser_process_main,
        args=(batches, path, file_format, options),
        name="tagstudio-import-parser",
        daemon=True,
    )
    process.start()
    try:
        while True:
            try:
                item = batches.get(timeout=1.0)
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        f"the import parser process died (exit code {process.exitcode})"
                    ) from None
                continue
            if item is None:
                break
            if isinstance(item, _ParserFailure):
                if item.format_error:
                    raise FileFormatError(item.message)
                raise RuntimeError(f"the import parser process failed:\n{item.message}")
            yield item
        process.join()
    finally:
        if process.is_alive():
            process.terminate()
            process.join()
        batches.close()


# --- The import ---------------------------------------------------------------------------------------


def import_products(
    path: Path | str,
    *,
    file_format: str | None = None,
    ignore_tags: bool = False,
    batch_size: int | None = None,
    progress: ImportProgress | None = None,
    parallel: bool | None = None,
) -> ImportStats:
    """Import one catalog file. Raises FileFormatError (nothing written) if it is not JSONL/CSV.

    ``parallel``: parse in a separate process (PostgreSQL only); default: for files of
    PARALLEL_MIN_BYTES or more, where the platform allows it.
    """
    path = Path(path)
    file_format = detect_format(path, file_format)
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


# --- PostgreSQL writer ----------------------------------------------------------------------------------

_PRODUCT_COLUMNS = (
    "external_id",
    "title",
    "description",
    "brand",
    "category_path",
    "attributes",
    "lang",
    "image_url",
    "content_hash",
)
_STAGE = "tagstudio_import_stage"
_TAG_STAGE = "tagstudio_import_tag_stage"


class _WrittenIds:
    """Into an empty catalog, the ids this import wrote are the only ones that can exist (a concurrent
    writer's would surface as a unique violation, which takes the upsert path): a batch then looks up only
    the ids it shares with earlier batches, instead of probing the external-id index for every row.

    Ids are kept as their hash (a collision only costs a needless lookup); past MAX_IDS the import goes back
    to looking every id up, which bounds the memory.
    """

    MAX_IDS = 5_000_000

    def __init__(self) -> None:
        self.hashes: set[int] = set()

    @classmethod
    def for_catalog(cls) -> _WrittenIds | None:
        return None if Product.objects.exists() else cls()

    def to_look_up(self, external_ids: list[str]) -> list[str] | None:
        """The ids that may exist already (None: all of them, the set is full)."""
        if len(self.hashes) > self.MAX_IDS:
            return None
        hashes = self.hashes
        return [external_id for external_id in external_ids if hash(external_id) in hashes]

    def add(self, external_ids: list[str]) -> None:
        self.hashes.update(hash(external_id) for external_id in external_ids)


class _ConcurrentImport(Exception):
    """Another session wrote some of this batch's products or tags since the lookup."""


def _pg_cursor() -> psycopg.Cursor:
    """A psycopg cursor on Django's connection (same session and transaction) with server-side binding:
    array parameters go as binary (``%b``); Django's client-side binding quotes a 5,000-id array in
    Python, element by element, at several times the cost."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _copy(cursor: psycopg.Cursor, statement: str, payload: bytes) -> None:
    with cursor.copy(statement) as copy:
        copy.write(payload)


def _copy_or_conflict(cursor, statement: str, payload: bytes) -> None:
    """COPY where a unique violation means a concurrent writer: raised as _ConcurrentImport."""
    try:
        _copy(cursor, statement, payload)
    except psycopg.errors.UniqueViolation as exc:
        raise _ConcurrentImport from exc


def write_batch_postgres(
    batch: ParsedBatch, resolver: TagResolver | None, written: _WrittenIds | None = None
) -> tuple[int, int, int]:
    """Write one batch: returns (products created, products updated, tags added). Call inside a transaction.

    The common cases take COPY straight into the tables: new products (ids drawn from the table's
    sequence, so their tags need no lookup), and tags new to a product. Only products whose content
    changed go through a staging table. If a concurrent import gets in the way (a unique violation),
    the batch is rewritten with INSERT … ON CONFLICT statements instead.
    """
    # Tags first, outside the savepoint below: a rollback must not take tags the resolver has cached.
    row_tags = _batch_tag_ids(batch, resolver)
    lookup_ids = written.to_look_up(batch.external_ids) if written is not None else None
    try:
        with transaction.atomic():
            result = _write_batch_copy(batch, row_tags, lookup_ids)
    except _ConcurrentImport:
        logger.info("import batch collided with a concurrent writer; upserting it instead")
        result = _write_batch_upsert(batch, row_tags)
    if written is not None:
        written.add(batch.external_ids)
    return result


def _lookup(cursor, external_ids: list[str]) -> dict[str, tuple[int, str, str]]:
    table = Product._meta.db_table
    cursor.execute(
        f"SELECT external_id, id, content_hash, review_status FROM {table} WHERE external_id = ANY(%b)",
        [external_ids],
    )
    return {
        external_id: (pk, content_hash, status) for external_id, pk, content_hash, status in cursor.fetchall()
    }


def _batch_tag_ids(batch: ParsedBatch, resolver: TagResolver | None) -> dict[int, set[int]]:
    """{row index in the batch: tag ids} for rows with tags; unknown names become tags, deactivated ones
    are skipped (annotation.taxonomy.resolver: an import does not apply a deactivated tag)."""
    if resolver is None or not batch.tag_rows:
        return {}
    names = {name for _, row_names in batch.tag_rows for name in row_names}
    tag_ids = resolver.resolve_to_apply(names, create=True).tags
    return {
        index: {tag_ids[name] for name in row_names if name in tag_ids} for index, row_names in batch.tag_rows
    }


def _existing_pairs(cursor, product_ids: list[int]) -> set[tuple[int, int]]:
    if not product_ids:
        return set()
    cursor.execute(
        f"SELECT product_id, tag_id FROM {ProductTag._meta.db_table} WHERE product_id = ANY(%b)",
        [product_ids],
    )
    return set(cursor.fetchall())


def _write_batch_copy(
    batch: ParsedBatch, row_tags: dict[int, set[int]], lookup_ids: list[str] | None = None
) -> tuple[int, int, int]:
    """``lookup_ids``: the ids that may already be in the catalog (None: any of the batch's)."""
    products = Product._meta.db_table
    unreviewed = ReviewStatus.UNREVIEWED.value
    with _pg_cursor() as cursor:
        to_look_up = batch.external_ids if lookup_ids is None else lookup_ids
        existing = _lookup(cursor, to_look_up) if to_look_up else {}
        new_rows: list[int] = []
        changed_rows: list[int] = []
        product_ids: list[int] = [0] * len(batch.external_ids)
        lines: list[bytes] | None = None
        if existing:
            lines = batch.copy_lines()
            for index, external_id in enumerate(batch.external_ids):
                known = existing.get(external_id)
                if known is None:
                    new_rows.append(index)
                else:
                    product_ids[index] = known[0]
                    if known[1] != lines[index][-64:].decode():  # the content hash ends the line
                        changed_rows.append(index)
        else:
            new_rows = list(range(len(batch.external_ids)))

        # New products with tags get ids drawn from the table's sequence here, so their tags need no
        # lookup; the others take the column default inside COPY (cheaper than drawing ids one by one).
        tagged_new = [i for i in new_rows if i in row_tags] if row_tags else []
        cursor.execute(
            # The batch's timestamp is the wall clock (not now(): a caller's transaction may span batches).
            "SELECT statement_timestamp(), "
            "array(SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s))",
            [products, len(tagged_new)],
        )
        now, new_ids = cursor.fetchone()
        stamp = now.isoformat().encode()
        # Constant columns after the data columns: review_status, priority, needs_suggestion, created_at,
        # updated_at. Lines end in b"\n" and escaped values hold none, so one replace appends them.
        constants = b"\t%s\t0\tt\t%s\t%s" % (unreviewed.encode(), stamp, stamp)
        new_columns = f"{', '.join(_PRODUCT_COLUMNS)}, review_status, priority, needs_suggestion, created_at, updated_at"
        if len(new_rows) == len(batch.external_ids) and not tagged_new:
            # The common case of a first import: the whole payload as it came, constants appended.
            _copy_or_conflict(
                cursor,
                f"COPY {products} ({new_columns}) FROM STDIN",
                batch.copy_payload.replace(b"\n", constants + b"\n"),
            )
        elif new_rows:
            lines = lines if lines is not None else batch.copy_lines()
            if len(tagged_new) < len(new_rows):
                _copy_or_conflict(
                    cursor,
                    f"COPY {products} ({new_columns}) FROM STDIN",
                    b"".join(lines[i] + constants + b"\n" for i in new_rows if i not in row_tags),
                )
        if tagged_new:
            # Their tags are all new to them: tags_updated_at is set now rather than by a second write.
            tail = constants + b"\t" + stamp + b"\n"
            payload = []
            for index, product_id in zip(tagged_new, new_ids):
                product_ids[index] = product_id
                payload.append(b"%d\t%s%s" % (product_id, lines[index], tail))
            _copy_or_conflict(
                cursor, f"COPY {products} (id, {new_columns}, tags_updated_at) FROM STDIN", b"".join(payload)
            )
        updated = 0
        if changed_rows:
            updated = _update_changed(
                cursor, [b"%d\t%s\n" % (product_ids[i], lines[i]) for i in changed_rows], now
            )

        tags_added = 0
        if row_tags:
            # Existing products: only those still unreviewed take the file's tags, and only tags they lack.
            candidates = [
                i
                for i in row_tags
                if batch.external_ids[i] in existing and existing[batch.external_ids[i]][2] == unreviewed
            ]
            have = _existing_pairs(cursor, [product_ids[i] for i in candidates])
            pairs = [(product_ids[i], tag_id) for i in tagged_new for tag_id in row_tags[i]]
            touched: set[int] = set()
            for index in candidates:
                product_id = product_ids[index]
                for tag_id in row_tags[index]:
                    if (product_id, tag_id) not in have:
                        pairs.append((product_id, tag_id))
                        touched.add(product_id)
            if pairs:
                source = TagSource.IMPORT.value.encode()
                _copy_or_conflict(
                    cursor,
                    f"COPY {ProductTag._meta.db_table} (product_id, tag_id, source, approved_at) FROM STDIN",
                    b"".join(b"%d\t%d\t%s\t%s\n" % (p, t, source, stamp) for p, t in pairs),
                )
                tags_added = len(pairs)
            if touched:
                cursor.execute(
                    f"UPDATE {products} SET tags_updated_at = %s WHERE id = ANY(%b)", [now, sorted(touched)]
                )
    return len(new_rows), updated, tags_added


def _ensure_stage_tables(cursor) -> None:
    # Temporary (not WAL-logged, private to this session); emptied explicitly before each use because a
    # surrounding transaction (a test, a caller's atomic block) may span several batches.
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (id bigint, external_id text, title text, description text, "
        "brand text, category_path jsonb, attributes jsonb, lang text, image_url text, content_hash text)"
    )
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_TAG_STAGE} (external_id text, tag_id bigint)")


def _fill_stage(cursor, payload: bytes, columns: str) -> None:
    _ensure_stage_tables(cursor)
    cursor.execute(f"TRUNCATE {_STAGE}")
    _copy(cursor, f"COPY {_STAGE} ({columns}) FROM STDIN", payload)
    # Statistics for the planner: a few thousand staged rows join the product table by index.
    cursor.execute(f"ANALYZE {_STAGE}")


def _update_changed(cursor, lines: list[bytes], now) -> int:
    """Update products (by id) whose content changed; their tags, suggestions and review events stay."""
    table = Product._meta.db_table
    _fill_stage(cursor, b"".join(lines), f"id, {', '.join(_PRODUCT_COLUMNS)}")
    cursor.execute(
        f"""
        UPDATE {table} p SET
            title = s.title, description = s.description, brand = s.brand,
            category_path = s.category_path, attributes = s.attributes, lang = s.lang,
            image_url = s.image_url, content_hash = s.content_hash,
            needs_suggestion = true, updated_at = %s
        FROM {_STAGE} s
        WHERE p.id = s.id AND p.content_hash IS DISTINCT FROM s.content_hash
        """,
        [now],
    )
    return cursor.rowcount


def _write_batch_upsert(batch: ParsedBatch, row_tags: dict[int, set[int]]) -> tuple[int, int, int]:
    """The batch with INSERT … ON CONFLICT statements: safe against concurrent writers, slower."""
    products = Product._meta.db_table
    with _pg_cursor() as cursor:
        lines = batch.copy_lines()
        _fill_stage(cursor, batch.copy_payload, ", ".join(_PRODUCT_COLUMNS))
        cursor.execute(
            f"""
            INSERT INTO {products} ({", ".join(_PRODUCT_COLUMNS)}, review_status, priority, needs_suggestion,
                created_at, updated_at)
            SELECT {", ".join(_PRODUCT_COLUMNS)}, %s, 0, true, statement_timestamp(), statement_timestamp()
            FROM {_STAGE}
            ON CONFLICT (external_id) DO UPDATE SET
                title = EXCLUDED.title, description = EXCLUDED.description, brand = EXCLUDED.brand,
                category_path = EXCLUDED.category_path, attributes = EXCLUDED.attributes,
                lang = EXCLUDED.lang, image_url = EXCLUDED.image_url, content_hash = EXCLUDED.content_hash,
                needs_suggestion = true, updated_at = statement_timestamp()
            WHERE {products}.content_hash IS DISTINCT FROM EXCLUDED.content_hash
            RETURNING (xmax = 0) AS inserted
            """,
            [ReviewStatus.UNREVIEWED.value],
        )
        flags = [inserted for (inserted,) in cursor.fetchall()]
        created = sum(flags)
        tags_added = 0
        if row_tags:
            cursor.execute(f"TRUNCATE {_TAG_STAGE}")
            _copy(
                cursor,
                f"COPY {_TAG_STAGE} (external_id, tag_id) FROM STDIN",
                b"".join(
                    b"%s\t%d\n" % (lines[i][: lines[i].index(b"\t")], tag_id)
                    for i, tag_ids in row_tags.items()
                    for tag_id in tag_ids
                ),
            )
            cursor.execute(f"ANALYZE {_TAG_STAGE}")
            cursor.execute(
                f"""
                WITH added AS (
                    INSERT INTO {ProductTag._meta.db_table} (product_id, tag_id, source, approved_at)
                    SELECT p.id, s.tag_id, %s, statement_timestamp()
                    FROM {_TAG_STAGE} s JOIN {products} p ON p.external_id = s.external_id
                    WHERE p.review_status = %s
                    ON CONFLICT (product_id, tag_id) DO NOTHING
                    RETURNING product_id
                ), touched AS (
                    UPDATE {products} SET tags_updated_at = statement_timestamp()
                    WHERE id IN (SELECT product_id FROM added)
                )
                SELECT count(*) FROM added
                """,
                [TagSource.IMPORT.value, ReviewStatus.UNREVIEWED.value],
            )
            tags_added = cursor.fetchone()[0]
    return created, len(flags) - created, tags_added


# --- Generic writer (SQLite, the embedded mode) --------------------------------------------------------


def write_products_generic(rows: list[ProductRow]) -> tuple[int, int, dict[str, int]]:
    """Write one batch with Django's bulk operations; returns (created, updated, {external_id: id})."""
    existing = {
        external_id: (pk, content_hash)
        for external_id, pk, content_hash in Product.objects.filter(
            external_id__in=[row.external_id for row in rows]
        ).values_list("external_id", "id", "content_hash")
    }
    now = timezone.now()
    new_products, changed = [], []
    for row in rows:
        content_hash = row.content_hash
        fields = {
            "title": row.title,
            "description": row.description,
            "brand": row.brand,
            "category_path": row.category_path,
            "attributes": row.attributes,
            "lang": row.lang,
            "image_url": row.image_url,
            "content_hash": content_hash,
        }
        known = existing.get(row.external_id)
        if known is None:
            new_products.append(
                Product(external_id=row.external_id, created_at=now, updated_at=now, **fields)
            )
        elif known[1] != content_hash:
            changed.append(Product(id=known[0], needs_suggestion=True, updated_at=now, **fields))
    Product.objects.bulk_create(new_products, batch_size=1000)
    if changed:
        Product.objects.bulk_update(
            changed,
            [*(c for c in _PRODUCT_COLUMNS if c != "external_id"), "needs_suggestion", "updated_at"],
            batch_size=500,
        )
    ids: dict[str, int] = {}
    if any(row.tags for row in rows):
        ids = dict(
            Product.objects.filter(external_id__in=[row.external_id for row in rows if row.tags]).values_list(
                "external_id", "id"
            )
        )
    return len(new_products), len(changed), ids


def write_tags_generic(rows: list[ProductRow], ids: dict[str, int], resolver: TagResolver) -> int:
    """The generic counterpart of write_tags_postgres (same rules)."""
    names = {tag for row in rows if row.tags for tag in row.tags}
    if not names:
        return 0
    tag_ids = resolver.resolve_to_apply(names, create=True).tags  # deactivated tags: skipped
    unreviewed = set(
        Product.objects.filter(id__in=ids.values(), review_status=ReviewStatus.UNREVIEWED).values_list(
            "id", flat=True
        )
    )
    pairs = {
        (ids[row.external_id], tag_ids[tag])
        for row in rows
        if row.tags and ids[row.external_id] in unreviewed
        for tag in row.tags
        if tag in tag_ids
    }
    existing = set(
        ProductTag.objects.filter(product_id__in={p for p, _ in pairs}).values_list("product_id", "tag_id")
    )
    new_pairs = pairs - existing
    if not new_pairs:
        return 0
    now = timezone.now()
    ProductTag.objects.bulk_create(
        [ProductTag(product_id=p, tag_id=t, source=TagSource.IMPORT, approved_at=now) for p, t in new_pairs],
        ignore_conflicts=True,  # a concurrent import of the same product
        batch_size=2000,
    )
    Product.objects.filter(id__in={p for p, _ in new_pairs}).update(tags_updated_at=now)
    return len(new_pairs)


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
        file_format = detect_format(target)
    except FileFormatError:
        target.unlink(missing_ok=True)
        raise
    from annotation import tasks

    with transaction.atomic():
        job = ImportJob.objects.create(
            source_name=filename[:500],
            file_path=str(target),
            file_format=file_format,
            ignore_tags=ignore_tags,
            created_by=user,
        )
        transaction.on_commit(lambda: tasks.import_run.delay(job.id))
    return job


def import_job_run(job_id: int) -> ImportJob | None:
    """Run a queued import job. A duplicate delivery finds the job no longer queued and does nothing."""
    claimed = ImportJob.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info("import job %s is not queued (already run or missing); skipping", job_id)
        return ImportJob.objects.filter(id=job_id).first()
    job = ImportJob.objects.get(id=job_id)

    def report(_done: int, _total: int, stats: ImportStats) -> None:
        ImportJob.objects.filter(id=job_id).update(
            rows_total=stats.rows_total,
            rows_ok=stats.rows_ok,
            rows_rejected=stats.rows_rejected,
            products_created=stats.products_created,
            products_updated=stats.products_updated,
        )

    try:
        stats = import_products(
            job.file_path, file_format=job.file_format, ignore_tags=job.ignore_tags, progress=report
        )
    except Exception as exc:  # the job records any failure; the worker stays up
        logger.exception("import job %s failed", job_id)
        ImportJob.objects.filter(id=job_id).update(
            status=JobStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        return ImportJob.objects.get(id=job_id)
    ImportJob.objects.filter(id=job_id).update(
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        rows_total=stats.rows_total,
        rows_ok=stats.rows_ok,
        rows_rejected=stats.rows_rejected,
        products_created=stats.products_created,
        products_updated=stats.products_updated,
        errors=[error.as_dict() for error in stats.errors],
    )
    from annotation.services.suggestions import suggestions_refresh_request

    suggestions_refresh_request()
    return ImportJob.objects.get(id=job_id)
