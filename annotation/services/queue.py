"""Review-queue priorities: active learning over the stored suggestion scores (``mlcore.selection``).

After every suggestion refresh the active version's stored scores of the unreviewed products become a
(products x tags) probability matrix, with the stored decisions (``Suggestion.selected``, what the catalog
carries for a product nobody reviewed) as a boolean one beside it, ``mlcore.selection.rank`` orders them with the admin's strategy, and
the result is written to ``Product.priority`` (indexed with id by ``product_queue_idx``), so claiming the
next product is a keyed lookup, never a model call. Before any model exists the queue is ordered by
diversity over the product texts (``mlcore.selection.cold_start_rank``), not by id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from scipy import sparse

from annotation.jobs import queue_priorities_recompute_enqueue
from annotation.models import AutoApprovalAudit, ModelVersion, Product, ReviewStatus, Setting, Suggestion
from mlcore.selection import DEFAULT_STRATEGY, STRATEGIES, cold_start_rank, rank

logger = logging.getLogger(__name__)

STRATEGY_SETTING = "active_learning_strategy"
# Set (to the request time) whenever a recompute is requested, cleared by the recompute that served it: a
# request whose message the broker lost stays visible to the job sweeper (annotation.services.jobs_recovery).
RECOMPUTE_PENDING_SETTING = "queue_priorities_requested_at"
# Cold start clusters the texts of at most this many unreviewed products (a seeded sample of them); the
# rest follow by id. Nobody reviews more than this before the first model exists.
COLD_START_MAX_PRODUCTS = 100_000
_WRITE_CHUNK = 50_000
# SQLite (the embedded mode) has one write lock for the whole database: a review submit waits for any open
# write transaction, so there priorities are written in transactions of a few milliseconds each.
_SQLITE_WRITE_CHUNK = 500
_SQLITE_WRITE_PAUSE_SECONDS = 0.05
_ADVISORY_KEY = 0x7A675F7175657565  # "zg_queue": one priority recompute at a time per database
# Products drawn for an auto-approval audit (annotation.services.auto_approval) come first: strategies rank
# in (0, 1], so this is above any of them; among audits the queue's id tie-break orders them.
AUDIT_PRIORITY = 1_000.0


class UnknownStrategy(ValueError):
    """A strategy name that ``mlcore.selection`` does not register."""


# --------------------------------------------------------------------------------------------------
# The strategy setting
# --------------------------------------------------------------------------------------------------


def queue_strategies() -> list[tuple[str, str]]:
    """(name, description) of every registered strategy, the default first."""
    names = sorted(STRATEGIES, key=lambda name: (name != DEFAULT_STRATEGY, name))
    return [(name, STRATEGIES[name].description) for name in names]


def queue_strategy() -> str:
    """The strategy in use: the admin's choice, or mlcore's default (also when a stored name is gone)."""
    stored = Setting.objects.filter(key=STRATEGY_SETTING).values_list("value", flat=True).first()
    return stored if isinstance(stored, str) and stored in STRATEGIES else DEFAULT_STRATEGY


def queue_strategy_set(*, strategy: str, user=None) -> str:
    """Choose the active-learning strategy; the queue is re-ranked with it in the background."""
    if strategy not in STRATEGIES:
        raise UnknownStrategy(f"unknown strategy {strategy!r}; choose one of {', '.join(sorted(STRATEGIES))}")
    with transaction.atomic():
        Setting.objects.update_or_create(
            key=STRATEGY_SETTING,
            defaults={
                "value": strategy,
                "updated_at": timezone.now(),
                "updated_by": user if user is not None and user.is_authenticated else None,
            },
        )
        queue_priorities_request()
    return strategy


# --------------------------------------------------------------------------------------------------
# Recomputing priorities
# --------------------------------------------------------------------------------------------------


def queue_priorities_request() -> None:
    """Recompute the priorities in the background once the caller's transaction commits."""
    now = timezone.now()
    Setting.objects.update_or_create(
        key=RECOMPUTE_PENDING_SETTING, defaults={"value": now.isoformat(), "updated_at": now}
    )
    queue_priorities_recompute_enqueue()


def queue_priorities_recompute() -> dict[str, Any]:
    """Rank the unreviewed products and store their priorities. Returns what it did (for logs/tests)."""
    started = time.monotonic()
    with _one_at_a_time():
        # Read before ranking: a request made while this runs stays pending and is served again.
        pending = (
            Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING).values_list("value", flat=True).first()
        )
        active = ModelVersion.objects.filter(is_active=True).first()
        summary = _cold_start() if active is None else _rank_by_scores(active)
        summary["audits_in_front"] = _audits_to_front()
        if pending is not None:
            Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING, value=pending).delete()
    summary["seconds"] = round(time.monotonic() - started, 2)
    logger.info("queue priorities: %s", summary)
    return summary


class _CsrRows:
    """Row-sliceable dense view over a sparse matrix: ``mlcore.selection.rank`` reads probabilities in
    blocks, so 1,000,000 products x 500 tags never exist as one dense array."""

    def __init__(self, matrix) -> None:
        self.matrix = matrix
        self.shape = matrix.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        return self.matrix[key].toarray()


def _rank_by_scores(active: ModelVersion) -> dict[str, Any]:
    strategy = queue_strategy()
    product_ids, tag_ids, scores, selected = _active_scores(active)
    unique_products = np.unique(product_ids)
    if len(unique_products) == 0:
        _zero_unranked(active)
        return {"strategy": strategy, "ranked": 0, "version": active.version}
    unique_tags = np.unique(tag_ids)
    rows = np.searchsorted(unique_products, product_ids)
    cols = np.searchsorted(unique_tags, tag_ids)
    shape = (len(unique_products), len(unique_tags))
    matrix = sparse.csr_matrix((scores, (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    # The stored decisions, aligned with the scores; sparse like them (a few selected tags per product).
    decisions = sparse.csr_matrix(
        (np.ones(int(selected.sum()), dtype=bool), (rows[selected], cols[selected])), shape=shape
    )
    priority = rank(
        _CsrRows(matrix),
        strategy=strategy,
        thresholds=_thresholds(active, unique_tags),
        selected=decisions,
        # Diversity strategies compare product texts; only a few thousand candidates are ever loaded.
        texts=_lazy_texts(unique_products),
        labeled_texts=_reviewed_texts(),
        batch_size=_review_batch_size(),
        seed=active.id,
    )
    _priorities_write(unique_products, priority)
    _zero_unranked(active)
    return {"strategy": strategy, "ranked": int(len(unique_products)), "version": active.version}


def _texts_by_id(ids: list[int]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        for pk, title, brand, description in Product.objects.filter(id__in=chunk).values_list(
            "id", "title", "brand", "description"
        ):
            texts[pk] = _product_text(title, brand, description)
    return texts


def _lazy_texts(product_ids: np.ndarray):
    """``texts(rows) -> list[str]`` for ``mlcore.selection.rank``: loads only the rows it asks for."""

    def load(rows: np.ndarray) -> list[str]:
        ids = [int(pk) for pk in product_ids[np.asarray(rows, dtype=np.int64)]]
        texts = _texts_by_id(ids)
        return [texts.get(pk, "") for pk in ids]

    return load


def _reviewed_texts(limit: int = 500) -> list[str]:
    """Texts of the most recently reviewed products: a batch should also differ from what is labelled."""
    rows = (
        Product.objects.filter(review_status=ReviewStatus.REVIEWED)
        .order_by("-id")
        .values_list("title", "brand", "description")[:limit]
    )
    return [_product_text(title, brand, description) for title, brand, description in rows]


def _review_batch_size() -> int:
    # The reviews between two trainings are one "batch" in active-learning terms (capped for ranking cost).
    return max(1, min(int(settings.RETRAIN_AFTER_REVIEWS) or 200, 1_000))


def _thresholds(active: ModelVersion, tag_ids: np.ndarray) -> np.ndarray | None:
    """The tagger's per-tag decision thresholds, in the matrix's column order, when the model states them."""
    thresholds = (active.config or {}).get("thresholds")
    if not isinstance(thresholds, dict):
        return None
    by_id = {
        tag_id: thresholds.get(name) for name, tag_id in (active.config or {}).get("tag_ids", {}).items()
    }
    values = np.array([by_id.get(int(t)) or 0.5 for t in tag_ids], dtype=np.float32)
    return np.clip(values, 1e-3, 1 - 1e-3)


def _active_scores(active: ModelVersion) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(product id, tag id, score, selected) of the active version's suggestions for unreviewed products
    whose current suggestions are that version's, streamed into arrays (20 scores x 1M products fit easily).

    ``selected`` is the tagger's real decision (thresholds, then top-k, hierarchy closure and exclusive
    groups), what the catalog and the export carry for an unreviewed product: the ranking judges the
    decisions a review would correct (the card pre-checks those of them scoring at least
    REVIEW_PRECHECK_MIN_SCORE, see annotation.selectors.precheck).
    """
    product_table = Product._meta.db_table
    sql = (
        f"SELECT s.product_id, s.tag_id, s.score, s.selected FROM {Suggestion._meta.db_table} s "
        f"JOIN {product_table} p ON p.id = s.product_id "
        "WHERE s.model_version_id = %s AND p.review_status = %s AND p.suggested_by_id = %s"
    )
    # Typed columns per fetched chunk: never one float64 table of every row (4 x 8 bytes per suggestion).
    products: list[np.ndarray] = []
    tags: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    selected: list[np.ndarray] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [active.id, ReviewStatus.UNREVIEWED, active.id])
        while True:
            chunk = cursor.fetchmany(200_000)
            if not chunk:
                break
            table = np.array(chunk, dtype=np.float64)
            products.append(table[:, 0].astype(np.int64))
            tags.append(table[:, 1].astype(np.int64))
            scores.append(table[:, 2].astype(np.float32))
            selected.append(table[:, 3] != 0)
    if not products:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), np.empty(0, dtype=bool)
    return np.concatenate(products), np.concatenate(tags), np.concatenate(scores), np.concatenate(selected)


def _zero_unranked(active: ModelVersion) -> None:
    """Unreviewed products without the active version's suggestions (still being scored) go last."""
    (
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
        .exclude(suggested_by=active)
        .exclude(priority=0.0)
        .update(priority=0.0)
    )


def _audits_to_front() -> int:
    """Put the products waiting for their auto-approval audit review back in front after a ranking."""
    return (
        Product.objects.filter(
            review_status=ReviewStatus.UNREVIEWED,
            id__in=AutoApprovalAudit.objects.filter(reviewed_at__isnull=True).values("product_id"),
        )
        .exclude(priority=AUDIT_PRIORITY)
        .update(priority=AUDIT_PRIORITY)
    )


def _product_text(title: str, brand: str, description: str) -> str:
    return " ".join(part for part in (title, brand, (description or "")[:300]) if part)


def _cold_start() -> dict[str, Any]:
    ids = np.fromiter(
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
        .order_by("id")
        .values_list("id", flat=True),
        dtype=np.int64,
    )
    if len(ids) == 0:
        return {"strategy": "cold_start", "ranked": 0}
    if len(ids) > COLD_START_MAX_PRODUCTS:
        rng = np.random.default_rng(0)
        ids_ranked = np.sort(rng.choice(ids, COLD_START_MAX_PRODUCTS, replace=False))
    else:
        ids_ranked = ids
    texts = _texts_by_id([int(pk) for pk in ids_ranked])
    priority = cold_start_rank([texts[int(pk)] for pk in ids_ranked], seed=0)
    if len(ids_ranked) < len(ids):
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).exclude(priority=0.0).update(
            priority=0.0
        )
    _priorities_write(ids_ranked, priority)
    return {"strategy": "cold_start", "ranked": int(len(ids_ranked))}


def _priorities_write(product_ids: np.ndarray, priority: np.ndarray) -> None:
    """Store priorities in chunks: one UPDATE … FROM unnest(...) per 50,000 products on PostgreSQL."""
    table = Product._meta.db_table
    chunk = _WRITE_CHUNK if connection.vendor == "postgresql" else _SQLITE_WRITE_CHUNK
    for start in range(0, len(product_ids), chunk):
        ids = [int(x) for x in product_ids[start : start + chunk]]
        values = [float(x) for x in priority[start : start + chunk]]
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {table} AS p SET priority = v.priority "
                        "FROM unnest(%s::bigint[], %s::double precision[]) AS v(id, priority) "
                        "WHERE p.id = v.id AND p.priority IS DISTINCT FROM v.priority",
                        [ids, values],
                    )
            else:
                Product.objects.bulk_update(
                    [Product(id=pk, priority=value) for pk, value in zip(ids, values)],
                    ["priority"],
                    batch_size=500,
                )
        if connection.vendor != "postgresql":
            time.sleep(
                _SQLITE_WRITE_PAUSE_SECONDS
            )  # a window for a waiting submit (SQLite polls for its lock)


class _one_at_a_time:
    """A PostgreSQL session advisory lock: concurrent recomputes run one after the other (the later one
    sees the newer scores). A no-op on SQLite, where the embedded worker is the only writer."""

    def __enter__(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [_ADVISORY_KEY])

    def __exit__(self, *exc) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_KEY])
