"""The PostgreSQL writer: COPY new products straight into the table, upsert changed ones through a
staging table, add the file's tags through a staging table."""

from __future__ import annotations

import logging

import psycopg
from django.db import connection, transaction

from annotation.models import Product, ProductTag, ReviewStatus, TagSource
from annotation.services.imports.parse import _PRODUCT_COLUMNS, ParsedBatch
from annotation.taxonomy.resolver import TagResolver

logger = logging.getLogger(__name__)

# --- PostgreSQL writer ----------------------------------------------------------------------------------

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
    row_tags = _batch_tag_ids(batch, resolver, written)
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


def _reviewed_external_ids(external_ids: list[str]) -> set[str]:
    """Which of these products a person has reviewed already (the file's tags do not apply to them)."""
    with _pg_cursor() as cursor:
        cursor.execute(
            f"SELECT external_id FROM {Product._meta.db_table} "
            "WHERE external_id = ANY(%b) AND review_status <> %s",
            [external_ids, ReviewStatus.UNREVIEWED.value],
        )
        return {external_id for (external_id,) in cursor.fetchall()}


def _batch_tag_ids(
    batch: ParsedBatch, resolver: TagResolver | None, written: _WrittenIds | None = None
) -> dict[int, set[int]]:
    """{row index in the batch: tag ids} for rows with tags; unknown names become tags, deactivated ones
    are skipped (annotation.taxonomy.resolver: an import does not apply a deactivated tag).

    Rows of reviewed products are left out before any name is resolved: their tags are not applied, and
    resolving them with ``create`` would leave their new names behind as tags without products."""
    if resolver is None or not batch.tag_rows:
        return {}
    tag_rows = batch.tag_rows
    may_exist = [batch.external_ids[index] for index, _ in tag_rows]
    if written is not None:  # into an empty catalog, only ids an earlier batch wrote can exist
        looked_up = written.to_look_up(may_exist)
        may_exist = may_exist if looked_up is None else looked_up
    reviewed = _reviewed_external_ids(may_exist) if may_exist else set()
    if reviewed:
        tag_rows = [(index, names) for index, names in tag_rows if batch.external_ids[index] not in reviewed]
    names = {name for _, row_names in tag_rows for name in row_names}
    if not names:
        return {}
    tag_ids = resolver.resolve_to_apply(names, create=True).tags
    return {index: {tag_ids[name] for name in row_names if name in tag_ids} for index, row_names in tag_rows}


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
