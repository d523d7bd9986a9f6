"""Suggestions: the active model's tag scores for every product flagged ``needs_suggestion``.

The refresh is a chain of small batch tasks (saleor's dirty flag + batch + re-enqueue), never one task
over the catalog. Each batch takes the next ``size`` flagged products after its ``after_id`` in pk order,
enqueues its successor straight away (so idle workers on other machines pick the next batch while this
one runs inference), scores its products with the version's model (loaded from ``MODEL_DIR/<version>/``
and cached per worker process), bulk-creates ``Suggestion`` rows (ignore_conflicts on the
(product, model_version, tag) key: a duplicate delivery writes nothing twice), and clears the flags of the
products whose text did not change meanwhile. The last batch to finish marks the ``SuggestionRefresh``
done and asks for the review-queue priorities to be recomputed.

Suggestions of older versions stay (the audit trail names them) but are never current: a product's
current suggestions are those of ``Product.suggested_by``, and the UI shows them only when that is the
active version.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation.jobs import (
    auto_approval_run_enqueue,
    suggestions_refresh_enqueue,
    suggestions_refresh_send,
)
from annotation.models import (
    OPEN_JOB_STATUSES,
    JobStatus,
    ModelVersion,
    Product,
    Setting,
    Suggestion,
    SuggestionRefresh,
    Tag,
)
from annotation.selectors.auto_approval import PENDING_KEY as AUTO_APPROVAL_PENDING_KEY
from annotation.selectors.auto_approval import auto_approval_enabled
from annotation.selectors.taxonomy import (
    hierarchy_closure_enabled,
    taxonomy_inactive_tags,
    taxonomy_parents_map,
)
from annotation.services.model_files import artifact_dir, mlcore_runtime_settings
from annotation.services.queue import queue_priorities_request
from mlcore.inference import load_model, predict
from mlcore.postprocess import PostProcessConfig
from mlcore.types import ProductRecord

logger = logging.getLogger(__name__)

# How many scored tags per product are stored: the card shows the top ones, the queue ranks on them.
TOP_K = 20
_PRODUCT_FIELDS = (
    "id",
    "title",
    "description",
    "brand",
    "category_path",
    "attributes",
    "lang",
    "content_hash",
)


# --------------------------------------------------------------------------------------------------
# Starting a refresh
# --------------------------------------------------------------------------------------------------


def suggestions_refresh_request() -> SuggestionRefresh | None:
    """Call after flagging products (import, edits): suggestions from the active version follow in batches.

    Without an active version there is nothing to suggest yet; the review queue is then ordered by
    cold-start diversity over the product texts instead.
    """
    active = ModelVersion.objects.filter(is_active=True).first()
    if active is None:
        with transaction.atomic():
            queue_priorities_request()
        return None
    with transaction.atomic():
        return suggestions_refresh_start(version=active)


def suggestions_refresh_start(*, version: ModelVersion) -> SuggestionRefresh:
    """Open (or extend) the version's refresh and enqueue the first batch after commit.

    Runs inside the caller's transaction (activation, or :func:`suggestions_refresh_request`).
    """
    flagged = Product.objects.filter(needs_suggestion=True).count()
    refresh = (
        SuggestionRefresh.objects.select_for_update()
        .filter(model_version=version, status__in=OPEN_JOB_STATUSES)
        .order_by("-id")
        .first()
    )
    if refresh is None:
        refresh = SuggestionRefresh.objects.create(
            model_version=version, total=flagged, status=JobStatus.QUEUED
        )
    else:  # products flagged while it runs join it
        refresh.total = refresh.done + flagged
        refresh.save(update_fields=["total"])
    suggestions_refresh_enqueue(version.id, 0)
    return refresh


# --------------------------------------------------------------------------------------------------
# One batch
# --------------------------------------------------------------------------------------------------


def suggestions_refresh_batch(*, model_version_id: int, size: int | None = None, after_id: int = 0) -> int:
    """Score the next ``size`` flagged products after ``after_id`` with version ``model_version_id``.

    Returns how many products got their suggestions (0 for a stale version, a duplicate delivery or an
    empty range). Enqueues the next batch while flagged products remain after this one.
    """
    size = int(size or settings.SUGGESTION_BATCH_SIZE)
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    version = ModelVersion.objects.filter(id=model_version_id).first()
    if version is None or not version.is_active:
        # A newer version took over (or this one was rolled back): its own refresh covers the products.
        SuggestionRefresh.objects.filter(
            model_version_id=model_version_id, status__in=OPEN_JOB_STATUSES
        ).update(status=JobStatus.FAILED, finished_at=timezone.now())
        return 0
    refresh = SuggestionRefresh.objects.filter(model_version=version).order_by("-id").first()
    if refresh is None or refresh.status == JobStatus.FAILED:
        return 0  # stopped (superseded or an inference error); a new request opens a new refresh
    with _batch_lock(model_version_id, after_id) as acquired:
        if not acquired:
            return 0  # the same batch is running right now (a duplicate delivery)
        rows = list(
            Product.objects.filter(needs_suggestion=True, id__gt=after_id)
            .order_by("id")
            .values_list(*_PRODUCT_FIELDS)[:size]
        )
        if rows:
            last_id = rows[-1][0]
            if Product.objects.filter(needs_suggestion=True, id__gt=last_id).exists():
                suggestions_refresh_send(version.id, last_id)
            SuggestionRefresh.objects.filter(id=refresh.id, status=JobStatus.QUEUED).update(
                status=JobStatus.RUNNING
            )
            try:
                scored = _predict(version, [_record(row) for row in rows])
            except Exception:
                SuggestionRefresh.objects.filter(id=refresh.id, status__in=OPEN_JOB_STATUSES).update(
                    status=JobStatus.FAILED, finished_at=timezone.now()
                )
                raise
            written = _suggestions_write(version, refresh, rows, scored)
        else:
            written = 0
    _refresh_finish_if_done(version)
    return written


@contextmanager
def _batch_lock(model_version_id: int, after_id: int) -> Iterator[bool]:
    """A session advisory lock per (version, batch start) on PostgreSQL: a duplicate delivery of a batch
    that is still running skips it. It is released when the worker's connection dies. Elsewhere (the
    embedded SQLite mode, one worker) the unique key alone keeps duplicates harmless."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = (int(model_version_id) << 40) ^ int(after_id)
    key = key if key < 2**63 else key - 2**64
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _record(row: Sequence[Any]):
    pk, title, description, brand, category_path, attributes, lang, _hash = row
    return ProductRecord(
        id=str(pk),
        title=title,
        description=description or "",
        brand=brand or None,
        category_path=tuple(category_path) if category_path else None,
        attributes=attributes or None,
        lang=lang or None,
    )


def _predict(version: ModelVersion, records: list) -> list:
    model = load_model(str(artifact_dir(version)), runtime=mlcore_runtime_settings())  # cached per process
    return predict(model, records, top_k=TOP_K, postprocess=_taxonomy_postprocess(model))


def _taxonomy_postprocess(model):
    """The model's own post-processing, with the taxonomy as it is now: parents for hierarchy closure
    (when the closure option is on) and deactivated tags blocked. Aliases need no mapping here: the
    version's label map already resolves merged tags to where they went (``_tag_id_map``)."""
    base = getattr(model, "postprocess", None) or PostProcessConfig()
    return dataclasses.replace(
        base,
        parents=taxonomy_parents_map(),
        blocked=taxonomy_inactive_tags(),
        close_hierarchy=hierarchy_closure_enabled(),
    )


def version_tag_ids(version: ModelVersion) -> dict[str, int]:
    """The version's tag names -> the canonical, active tag ids they stand for now (see _tag_id_map)."""
    return _tag_id_map(version)


def _tag_id_map(version: ModelVersion) -> dict[str, int]:
    """The version's tag names → the canonical, active tag ids they stand for now.

    Tags merged since the training resolve to where they went; tags deactivated since are not suggested.
    """
    label_map: dict[str, int] = (version.config or {}).get("tag_ids", {})
    tags = {
        tag_id: (merged_into, active)
        for tag_id, merged_into, active in Tag.objects.values_list("id", "merged_into_id", "is_active")
    }
    result = {}
    for name, tag_id in label_map.items():
        seen = set()
        while tag_id in tags and tags[tag_id][0] is not None and tag_id not in seen:
            seen.add(tag_id)
            tag_id = tags[tag_id][0]
        if tag_id in tags and tags[tag_id][1]:
            result[name] = tag_id
    return result


_SQLITE_WRITE_PRODUCTS = 100
_SQLITE_WRITE_PAUSE_SECONDS = 0.05


def _suggestions_write(
    version: ModelVersion, refresh: SuggestionRefresh, rows: Sequence[Sequence[Any]], scored: Sequence
) -> int:
    """Store the batch's suggestions and clear the flags, for products whose text is what was scored.

    PostgreSQL: one transaction per batch. SQLite (the embedded mode) has one write lock for the whole
    database and a review submit waits for it, so there the batch is written in transactions of
    _SQLITE_WRITE_PRODUCTS products (each product's suggestions and flag still commit together).
    """
    if len(scored) != len(rows):
        raise RuntimeError(f"the model returned {len(scored)} results for {len(rows)} products")
    tag_ids = _tag_id_map(version)
    chunk = len(rows) if connection.vendor == "postgresql" else _SQLITE_WRITE_PRODUCTS
    cleared = 0
    for start in range(0, len(rows), max(chunk, 1)):
        cleared += _suggestions_write_chunk(
            version, refresh, rows[start : start + chunk], scored[start : start + chunk], tag_ids
        )
        if chunk < len(rows):
            # SQLite's busy handler polls with growing sleeps: leave a window in which a waiting submit
            # gets the lock, or back-to-back chunks starve it.
            time.sleep(_SQLITE_WRITE_PAUSE_SECONDS)
    return cleared


def _suggestions_write_chunk(
    version: ModelVersion,
    refresh: SuggestionRefresh,
    rows: Sequence[Sequence[Any]],
    scored: Sequence,
    tag_ids: dict[str, int],
) -> int:
    read_hash = {row[0]: row[-1] for row in rows}
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Suggestions can always be recomputed: this commit need not wait for its WAL flush (a crash
            # can only lose the whole batch, flags included, never half of it).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        current = dict(
            Product.objects.select_for_update()
            .filter(id__in=list(read_hash), needs_suggestion=True)
            .order_by("id")
            .values_list("id", "content_hash")
        )
        # Changed since it was read (re-imported): it stays flagged and a later batch scores the new text.
        unchanged = {pk for pk, content_hash in current.items() if read_hash[pk] == content_hash}
        # Columns of the rows to insert: (product id, tag id, score, selected).
        columns: tuple[list[int], list[int], list[float], list[bool]] = ([], [], [], [])
        for row, tag_scores in zip(rows, scored):
            if row[0] not in unchanged:
                continue
            best: dict[int, tuple[float, bool]] = {}
            for tag_score in tag_scores:
                tag_id = tag_ids.get(tag_score.tag)
                if tag_id is None:
                    continue
                score = min(1.0, max(0.0, float(tag_score.score)))
                previous = best.get(tag_id)
                if previous is None or score > previous[0]:
                    best[tag_id] = (score, bool(tag_score.selected))
            for tag_id, (score, selected) in best.items():
                columns[0].append(row[0])
                columns[1].append(tag_id)
                columns[2].append(score)
                columns[3].append(selected)
        _suggestions_insert(version, columns, now)
        cleared = Product.objects.filter(id__in=unchanged, needs_suggestion=True).update(
            needs_suggestion=False, suggested_by=version
        )
        SuggestionRefresh.objects.filter(id=refresh.id).update(done=F("done") + cleared)
    return cleared


def _suggestions_insert(
    version: ModelVersion, columns: tuple[list[int], list[int], list[float], list[bool]], now
) -> None:
    """Insert, skipping (product, version, tag) rows that exist: a repeated batch writes nothing twice.

    PostgreSQL: one INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING per 20,000 rows (about
    ten times faster than building model instances); elsewhere Django's bulk_create(ignore_conflicts).
    """
    products, tags, scores, selected = columns
    if not products:
        return
    if connection.vendor == "postgresql":
        table = Suggestion._meta.db_table
        with connection.cursor() as cursor:
            for start in range(0, len(products), 20_000):
                stop = start + 20_000
                cursor.execute(
                    f"INSERT INTO {table} (product_id, tag_id, model_version_id, score, selected, created_at) "
                    "SELECT u.product_id, u.tag_id, %s, u.score, u.selected, %s "
                    "FROM unnest(%s::bigint[], %s::bigint[], %s::double precision[], %s::boolean[]) "
                    "AS u(product_id, tag_id, score, selected) ON CONFLICT DO NOTHING",
                    [
                        version.id,
                        now,
                        products[start:stop],
                        tags[start:stop],
                        scores[start:stop],
                        selected[start:stop],
                    ],
                )
        return
    Suggestion.objects.bulk_create(
        [
            Suggestion(product_id=p, tag_id=t, model_version=version, score=sc, selected=se, created_at=now)
            for p, t, sc, se in zip(products, tags, scores, selected)
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )


def _refresh_finish_if_done(version: ModelVersion) -> None:
    """When no flagged product is left, close the refresh and recompute the review-queue priorities."""
    if Product.objects.filter(needs_suggestion=True).exists():
        return
    with transaction.atomic():
        finished = SuggestionRefresh.objects.filter(
            model_version=version, status__in=OPEN_JOB_STATUSES
        ).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now(), total=F("done"))
        if finished:
            logger.info("suggestion refresh for %s done", version.version)
            queue_priorities_request()
            if auto_approval_enabled():
                # The pass approves over the fresh scores, then asks for the priorities again.
                now = timezone.now()
                Setting.objects.update_or_create(
                    key=AUTO_APPROVAL_PENDING_KEY, defaults={"value": now.isoformat(), "updated_at": now}
                )
                auto_approval_run_enqueue()


# --------------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------------


def suggestion_refresh_latest() -> SuggestionRefresh | None:
    """The refresh of the active version (the one the models page reports), if any."""
    return SuggestionRefresh.objects.filter(model_version__is_active=True).order_by("-id").first()
