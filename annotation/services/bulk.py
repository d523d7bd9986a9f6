"""Bulk review of one tag: accept or reject tag T for many products at once, and undo such an action.

Entry points: the candidate grid (HTML) and ``POST /api/v1/tags/{id}/bulk-review/``. The rules:

- **One audited event per product.** Each decided product gets a ReviewEvent with action ``bulk``: the
  user, the tag (``ReviewEvent.tag``), the model version and T's score (in ``shown``), the product's tags
  before (``previous_tags``) and after (``final_tags``), ``accepted`` or ``rejected`` = [T], what was
  ``added``/``removed``; every event points at its ``BulkAction``. Accepted tags are written with source
  ``bulk`` (their ancestors with source ``hierarchy`` when the taxonomy's closure is on).
- **What a decision on one tag means for the product.** It decides T and nothing else: the product's
  ``review_status`` does not change. A merchandiser clearing ``colour:navy`` has not looked at the
  product's other tags, and a product marked reviewed would leave the review queue with its other
  suggestions never checked, and would train the model as if every unapproved tag had been rejected. So
  an unreviewed product stays in the review queue; its card then shows T approved (source ``bulk``) or, for
  a reject, T unchecked even where the model selects it (annotation.selectors.review.review_card); the export writes the accepted T with source ``bulk`` (the export writes
  every approved tag, as it does for imported ones). The grid's status filter counts the product as
  reviewed *for T* (annotation.selectors.bulk). A product already reviewed stays reviewed.
- **Decided once.** Products are locked ``FOR UPDATE`` in id order, chunk by chunk (two overlapping bulk
  actions wait for each other row by row and cannot deadlock). Under the lock a product whose T already
  stands as asked (accept: T approved, and the product reviewed or T accepted in bulk before; reject: T
  not approved, and reviewed or rejected in bulk) is skipped as already decided, so two operators accepting
  overlapping selections at once decide each product once.
- **Claims.** A product another operator holds under a live review claim is skipped and listed with the
  holder's name (their open card would otherwise overwrite the decision, or be overwritten).
- **Retraining.** Each bulk event counts as one review toward ``RETRAIN_AFTER_REVIEWS``
  (annotation.services.training.reviews_submitted_hook counts ``submit`` and ``bulk`` events).
- **Size.** Up to ``BULK_REVIEW_INLINE_MAX`` products (default 5,000) run in the request; more run as a
  Celery job (the BulkAction row is the job: queued -> running -> succeeded/failed, ``done`` and
  ``skipped`` grow chunk by chunk). Each chunk of ``CHUNK`` products is its own transaction, so card
  submits never wait behind a 100,000-product action; a failed job leaves the chunks it finished decided
  (each with its events), and its undo undoes exactly those.
- **Undo** reverts a whole action as one action (itself a BulkAction of kind ``undo``, inline or a job by
  the same rule): per product it removes what the accept added (T and the ancestors it added) or restores
  the T row a reject removed, with an ``undo`` event that ``reverts`` the bulk event. A product decided
  again since (a card submit, or another bulk decision on T) or held by another operator is skipped and
  listed. Only the action's author or an admin may undo it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from annotation.jobs import bulk_action_run_enqueue
from annotation.models import (
    BulkAction,
    BulkKind,
    JobStatus,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    Tag,
    TagSource,
)
from annotation.roles import is_admin
from annotation.selectors.bulk import (
    CandidateFilter,
    active_version,
    candidate_count,
    candidate_id_chunks,
    product_ids_by_external_id,
)
from annotation.selectors.review import claim_is_live
from annotation.services.job_claims import JobLease, queued_job_lease
from annotation.services.reviews import hierarchy_closure_enabled, tag_ancestors
from annotation.services.training import reviews_submitted_hook
from annotation.services.worker_liveness import worker_name

# Products decided per transaction: large enough that a chunk's fixed costs (its queries, its commit) are
# spread thin, small enough that a card submit waiting on one of its row locks waits about a second.
CHUNK = 2000
# Skipped products listed on the action (its counts are exact; the list stops here).
SKIPPED_KEPT = 1000
# The most products one explicit list may name (the API's body limit allows far fewer anyway).
MAX_EXPLICIT = 200_000


class BulkReviewError(ValueError):
    """A bulk request that cannot be carried out; ``field`` names what is wrong (400 over REST)."""

    def __init__(self, message: str, *, field: str = "non_field_errors") -> None:
        self.field = field
        super().__init__(message)


def inline_max() -> int:
    return int(getattr(settings, "BULK_REVIEW_INLINE_MAX", 5000))


@dataclass
class BulkOutcome:
    """What a bulk request did. ``done``/``skipped`` list products for an action that ran in the request;
    a queued job reports its counts on the BulkAction as it runs."""

    action: BulkAction
    queued: bool = False
    done: list[str] = field(default_factory=list)  # external ids
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (external id, reason)


@dataclass
class _Progress:
    keep_lists: bool
    lease: JobLease
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    done_count: int = 0
    skipped_count: int = 0


# --- Requests -------------------------------------------------------------------------------------------


def bulk_review_products(
    *, tag: Tag, user, accept: Sequence[str] = (), reject: Sequence[str] = ()
) -> BulkOutcome:
    """Accept ``tag`` for the products named in ``accept`` and reject it for those in ``reject`` (external
    ids). Unknown ids are skipped and listed; naming a product in both lists is an error."""
    _check_tag(tag)
    both = sorted(set(accept) & set(reject))
    if both:
        raise BulkReviewError(
            f"Products in both accept and reject: {', '.join(both[:20])}{' ...' if len(both) > 20 else ''}",
            field="reject",
        )
    if not accept and not reject:
        raise BulkReviewError("Name at least one product to accept or reject.", field="accept")
    if len(accept) + len(reject) > MAX_EXPLICIT:
        raise BulkReviewError(f"At most {MAX_EXPLICIT:,} products per request; select by filter instead.")
    ids = product_ids_by_external_id([*accept, *reject])
    unknown = [sku for sku in dict.fromkeys([*accept, *reject]) if sku not in ids]
    selection = {
        "accept": sorted({ids[sku] for sku in accept if sku in ids}),
        "reject": sorted({ids[sku] for sku in reject if sku in ids}),
    }
    total = len(selection["accept"]) + len(selection["reject"])
    initial = [(sku, "no product has this external id") for sku in unknown]
    return _start(kind=BulkKind.DECIDE, tag=tag, user=user, selection=selection, total=total, initial=initial)


def bulk_review_filter(*, tag: Tag, user, filters: CandidateFilter, accept: bool = True) -> BulkOutcome:
    """Accept (or reject) ``tag`` for every candidate that passes ``filters`` under the active version (the
    grid's "select all with score >= s on this filter"). Refused without an active version."""
    _check_tag(tag)
    version = active_version()
    if version is None:
        raise BulkReviewError("No active model version: there are no candidates to select by filter.")
    total = candidate_count(tag=tag, filters=filters, version_id=version.pk)
    selection = {"filter": filters.as_json(), "accept": accept, "version_id": version.pk}
    return _start(kind=BulkKind.DECIDE, tag=tag, user=user, selection=selection, total=total, version=version)


def bulk_action_undo(*, action: BulkAction, user) -> BulkOutcome:
    """Undo every decision of ``action`` as one action (see the module docstring)."""
    if action.kind != BulkKind.DECIDE:
        raise BulkReviewError("An undo cannot be undone; decide the products again instead.", field="id")
    if action.created_by_id != user.pk and not is_admin(user):
        raise BulkReviewError(
            "Only the operator who made this bulk action, or an admin, can undo it.", field="id"
        )
    if action.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise BulkReviewError("This bulk action is still running; undo it once it has finished.", field="id")
    if BulkAction.objects.filter(undoes=action).exists():
        raise BulkReviewError("This bulk action was already undone.", field="id")
    total = ReviewEvent.objects.filter(bulk_action=action, action=ReviewAction.BULK).count()
    return _start(
        kind=BulkKind.UNDO,
        tag=action.tag,
        user=user,
        selection={},
        total=total,
        undoes=action,
        version=action.model_version,
    )


def _check_tag(tag: Tag) -> None:
    if tag.merged_into_id is not None:
        raise BulkReviewError(
            f"Tag {tag.name!r} was merged into another tag; decide that tag instead.", field="tag"
        )
    if not tag.is_active:
        raise BulkReviewError(f"Tag {tag.name!r} is deactivated; it cannot be newly applied.", field="tag")


def _start(
    *,
    kind: str,
    tag: Tag,
    user,
    selection: dict,
    total: int,
    initial: Sequence[tuple[str, str]] = (),
    undoes: BulkAction | None = None,
    version: ModelVersion | None = None,
) -> BulkOutcome:
    """Record the action; run it now when it is small, else queue it as a job."""
    if version is None and kind == BulkKind.DECIDE:
        version = active_version()
    background = total > inline_max()
    # An action run in this request is held by this process from the start (a job, once a worker claims it).
    held = {"attempt": 1, "worker": worker_name(), "heartbeat_at": timezone.now().isoformat()}
    with transaction.atomic():
        if undoes is not None:
            # Under the action's row lock: two undo clicks cannot both create an undo.
            BulkAction.objects.select_for_update().filter(pk=undoes.pk).get()
            if BulkAction.objects.filter(undoes=undoes).exists():
                raise BulkReviewError("This bulk action was already undone.", field="id")
        action = BulkAction.objects.create(
            kind=kind,
            tag=tag,
            created_by=user,
            model_version=version,
            undoes=undoes,
            selection=selection,
            total=total,
            skipped=len(initial),
            skipped_items=[{"external_id": sku, "reason": why} for sku, why in initial[:SKIPPED_KEPT]],
            status=JobStatus.QUEUED if background else JobStatus.RUNNING,
            started_at=None if background else timezone.now(),
            progress={} if background else held,
        )
        if background:
            bulk_action_run_enqueue(action.pk)
    if background:
        return BulkOutcome(action=action, queued=True, skipped=list(initial))
    lease = JobLease(BulkAction, action.pk, 1, dict(held))
    progress = _Progress(keep_lists=True, lease=lease, skipped=list(initial), skipped_count=len(initial))
    _run_or_fail(action, progress)
    action.refresh_from_db()
    return BulkOutcome(action=action, done=progress.done, skipped=progress.skipped)


def bulk_action_run(job_id: int) -> BulkAction | None:
    """Run a queued bulk action (the Celery task). A duplicate delivery finds it no longer queued."""
    action, lease = queued_job_lease(BulkAction, job_id)
    if lease is None:
        return action
    _run_or_fail(action, _Progress(keep_lists=False, lease=lease, skipped_count=action.skipped))
    return BulkAction.objects.get(pk=job_id)


def _run_or_fail(action: BulkAction, progress: _Progress) -> None:
    # Lost: the chunk under way rolled back. Failed: the chunks before it stay decided; the caller of an
    # inline action (keep_lists) reports the error itself.
    done, _ = progress.lease.run(lambda: _run(action, progress), reraise=progress.keep_lists)
    if not done:
        return
    progress.lease.finish(JobStatus.SUCCEEDED)
    if progress.done_count and action.kind == BulkKind.DECIDE:
        transaction.on_commit(reviews_submitted_hook)


# --- Running ---------------------------------------------------------------------------------------------


def _run(action: BulkAction, progress: _Progress) -> None:
    tag = action.tag
    user = action.created_by
    if action.kind == BulkKind.UNDO:
        originals = ReviewEvent.objects.filter(bulk_action_id=action.undoes_id, action=ReviewAction.BULK)
        after = 0
        while True:
            events = list(originals.filter(id__gt=after).order_by("id")[:CHUNK])
            if not events:
                break
            _undo_chunk(action, events, progress)
            after = events[-1].id
        return

    implied: dict[int, Tag] = {}
    accepts = action.selection.get("accept")
    if accepts or (isinstance(accepts, bool) and accepts):
        implied = tag_ancestors([tag.pk]) if hierarchy_closure_enabled() else {}
        implied.pop(tag.pk, None)
        BulkAction.objects.filter(pk=action.pk).update(implied_tag_ids=sorted(implied))
    version_id = action.model_version_id
    if "filter" in action.selection:
        filters = CandidateFilter.from_json(action.selection["filter"])
        decision = bool(action.selection["accept"])
        version_id = action.selection["version_id"]
        version_name = ModelVersion.objects.filter(pk=version_id).values_list("version", flat=True).first()
        for rows in candidate_id_chunks(tag=tag, version_id=version_id, filters=filters, chunk=CHUNK):
            # The walk read each candidate's score and selection already: no second look-up per chunk.
            known = {pid: (score, selected, version_name) for score, pid, selected in rows}
            pairs = [(pid, decision) for _, pid, _ in rows]
            _decide_chunk(action, user, tag, implied, version_id, pairs, progress, scores=known)
        return
    pairs = [(pid, True) for pid in action.selection.get("accept", [])]
    pairs += [(pid, False) for pid in action.selection.get("reject", [])]
    pairs.sort()
    for start in range(0, len(pairs), CHUNK):
        _decide_chunk(action, user, tag, implied, version_id, pairs[start : start + CHUNK], progress)


def _insert(model, rows: list[dict]) -> None:
    """Insert ``rows`` (column -> value; JSON columns as Python lists) into ``model``'s table.

    On PostgreSQL through COPY on Django's connection (same transaction): a 1,000-product chunk writes
    1,000 events and up to 2,000 tags, and Django's ``bulk_create`` spent most of a chunk's time preparing
    their values one field at a time. Elsewhere (the embedded SQLite mode) through ``bulk_create``."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**row) for row in rows], batch_size=500)
        return
    columns = list(rows[0])
    json_columns = {f.column for f in model._meta.concrete_fields if f.get_internal_type() == "JSONField"}
    connection.ensure_connection()
    table = model._meta.db_table
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with psycopg.Cursor(connection.connection) as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([_json(row[c]) if c in json_columns else row[c] for c in columns])


def _among(qs: QuerySet, field: str, ids: Sequence[int]) -> QuerySet:
    """``qs`` narrowed to rows whose ``field`` is one of ``ids``. On PostgreSQL the ids travel as one text
    parameter unpacked in the database: Django's ``__in`` writes 2,000 placeholders that psycopg then parses
    and binds one by one, a fifth of a chunk's time."""
    if connection.vendor != "postgresql":
        return qs.filter(**{f"{field}__in": list(ids)})
    column = qs.model._meta.get_field(field).column
    condition = RawSQL(
        f'"{qs.model._meta.db_table}"."{column}" = ANY(string_to_array(%s, \',\')::bigint[])',
        [",".join(str(int(i)) for i in ids)],
        output_field=BooleanField(),
    )
    return qs.filter(condition)


def _json(value) -> str:
    # Most of a bulk event's lists are empty: skip the encoder for them (a third of a chunk's Python time).
    return "[]" if value == [] else json.dumps(value, ensure_ascii=False)


def _holder_names(user_ids: Iterable[int]) -> dict[int, str]:
    ids = set(user_ids)
    if not ids:
        return {}
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


def _lock(ids: Sequence[int]) -> dict[int, dict]:
    """The products, locked in id order (the same order in every bulk action: no deadlock between two)."""
    rows = (
        _among(Product.objects.select_for_update(of=("self",)), "id", ids)
        .order_by("id")
        .values("id", "external_id", "review_status", "claimed_by_id", "claim_expires_at")
    )
    return {row["id"]: row for row in rows}


def _tag_rows(ids: Sequence[int]) -> dict[int, list[dict]]:
    rows: dict[int, list[dict]] = {}
    for row in _among(ProductTag.objects.all(), "product", ids).values(
        "product_id", "tag_id", "tag__name", "source", "approved_by_id", "model_version_id", "approved_at"
    ):
        rows.setdefault(row["product_id"], []).append(row)
    return rows


def _snapshot(rows: Iterable[dict]) -> list[dict]:
    """The shape of ReviewEvent.previous_tags (annotation.services.reviews writes the same)."""
    return [
        {
            "tag": row["tag__name"],
            "tag_id": row["tag_id"],
            "source": row["source"],
            "approved_by": row["approved_by_id"],
            "model_version": row["model_version_id"],
            "approved_at": row["approved_at"].isoformat(),
        }
        for row in sorted(rows, key=lambda r: r["tag__name"].casefold())
    ]


def _sorted_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=str.casefold)


def _claim_reason(product: dict, *, user, holders: dict[int, str], now: dt.datetime) -> str | None:
    holder = product["claimed_by_id"]
    if holder is None or holder == user.pk or product["claim_expires_at"] is None:
        return None
    if not claim_is_live(
        Product(claimed_by_id=holder, claim_expires_at=product["claim_expires_at"]), now=now
    ):
        return None
    expires = timezone.localtime(product["claim_expires_at"])
    return f"being reviewed by {holders.get(holder, 'another user')} (claim until {expires:%H:%M:%S})"


def _decide_chunk(
    action: BulkAction,
    user,
    tag: Tag,
    implied: dict[int, Tag],
    version_id: int | None,
    pairs: Sequence[tuple[int, bool]],
    progress: _Progress,
    scores: dict[int, tuple[float, bool, str | None]] | None = None,
) -> None:
    """Decide one chunk in one transaction. ``scores``: each product's (score, selected, version) of the
    tag when the caller read them already (by filter), else they are looked up here."""
    ids = [pid for pid, _ in pairs]
    now = timezone.now()
    done: list[str] = []
    skipped: list[tuple[str, str]] = []
    with transaction.atomic():
        products = _lock(ids)
        holders = _holder_names(p["claimed_by_id"] for p in products.values() if p["claimed_by_id"])
        tag_rows = _tag_rows(list(products))
        latest: dict[int, tuple[bool, int | None]] = {}
        for pid, accepted, bulk_id in (
            _among(ReviewEvent.objects.all(), "product", list(products))
            .filter(
                tag_id=tag.pk,
                action=ReviewAction.BULK,
                reverted_by__isnull=True,
            )
            .order_by("product_id", "-created_at", "-id")
            .values_list("product_id", "accepted", "bulk_action_id")
        ):
            latest.setdefault(pid, (bool(accepted), bulk_id))
        if scores is None:
            scores = {
                pid: (score, selected, version)
                for pid, score, selected, version in _among(
                    Suggestion.objects.filter(tag_id=tag.pk, model_version_id=version_id),
                    "product",
                    list(products),
                ).values_list("product_id", "score", "selected", "model_version__version")
            }
        new_rows: list[dict] = []
        removals: list[int] = []
        events: list[dict] = []
        touched: list[int] = []
        for pid, accept in pairs:
            product = products.get(pid)
            if product is None:
                skipped.append((str(pid), "the product no longer exists"))
                continue
            sku = product["external_id"]
            reason = _claim_reason(product, user=user, holders=holders, now=now)
            if reason:
                skipped.append((sku, reason))
                continue
            rows = tag_rows.get(pid, [])
            present = {row["tag_id"] for row in rows}
            reviewed = product["review_status"] == ReviewStatus.REVIEWED
            prior = latest.get(pid)
            if accept and tag.pk in present and (reviewed or (prior is not None and prior[0])):
                skipped.append((sku, _already(prior, "accepted")))
                continue
            if not accept and tag.pk not in present and (reviewed or (prior is not None and not prior[0])):
                skipped.append((sku, _already(prior, "rejected")))
                continue
            names = {row["tag_id"]: row["tag__name"] for row in rows}
            added: list[str] = []
            removed: list[str] = []
            if accept:
                for tag_id, name, source in [(tag.pk, tag.name, TagSource.BULK)] + [
                    (t.pk, t.name, TagSource.HIERARCHY) for t in implied.values()
                ]:
                    if tag_id in present:
                        continue
                    new_rows.append(
                        {
                            "product_id": pid,
                            "tag_id": tag_id,
                            "source": source,
                            "approved_by_id": user.pk,
                            "model_version_id": version_id if tag_id == tag.pk and pid in scores else None,
                            "approved_at": now,
                        }
                    )
                    added.append(name)
                    names[tag_id] = name
            elif tag.pk in present:
                removals.append(pid)
                removed.append(tag.name)
                names.pop(tag.pk)
            suggestion = scores.get(pid)
            shown = (
                [
                    {
                        "tag": tag.name,
                        "tag_id": tag.pk,
                        "score": round(float(suggestion[0]), 6),
                        "selected": suggestion[1],
                        "model_version": suggestion[2],
                        "visible": True,
                    }
                ]
                if suggestion
                else []
            )
            events.append(
                _event_row(
                    product_id=pid,
                    user_id=user.pk,
                    action=ReviewAction.BULK,
                    created_at=now,
                    model_version_id=version_id if suggestion else None,
                    tag_id=tag.pk,
                    bulk_action_id=action.pk,
                    shown=shown,
                    previous_tags=_snapshot(rows),
                    final_tags=_sorted_names(names.values()),
                    accepted=[tag.name] if accept else [],
                    rejected=[] if accept else [tag.name],
                    added=_sorted_names(added),
                    removed=removed,
                )
            )
            if added or removed:
                touched.append(pid)
            done.append(sku)
        if removals:
            _among(ProductTag.objects.filter(tag_id=tag.pk), "product", removals).delete()
        _insert(ProductTag, new_rows)
        _insert(ReviewEvent, events)
        if touched:
            _among(Product.objects.all(), "id", touched).update(tags_updated_at=now, updated_at=now)
        _count(action, progress, done, skipped)


def _event_row(**values) -> dict:
    """A ReviewEvent row with every column (COPY has no model defaults to fall back on)."""
    row = {
        "product_id": None,
        "user_id": None,
        "action": None,
        "created_at": None,
        "model_version_id": None,
        "shown": [],
        "previous_tags": [],
        "final_tags": [],
        "accepted": [],
        "rejected": [],
        "added": [],
        "removed": [],
        "reverts_id": None,
        "claim_token": None,
        "submit_digest": "",
        "prechecked": None,
        "edited": None,
        "tag_id": None,
        "bulk_action_id": None,
    }
    unknown = set(values) - set(row)
    if unknown:
        raise TypeError(f"not ReviewEvent columns: {sorted(unknown)}")
    row.update(values)
    return row


def _already(prior: tuple[bool, int | None] | None, what: str) -> str:
    if prior is not None and prior[1] is not None:
        return f"already {what} (bulk action {prior[1]})"
    return f"already {what} (reviewed)"


def _count(action: BulkAction, progress: _Progress, done: list[str], skipped: list[tuple[str, str]]) -> None:
    """Add a chunk's outcome to the action's counters (same transaction as the chunk's writes)."""
    progress.done_count += len(done)
    room = max(0, SKIPPED_KEPT - progress.skipped_count)
    kept = [{"external_id": sku, "reason": why} for sku, why in skipped[:room]]
    progress.skipped_count += len(skipped)
    if progress.keep_lists:
        progress.done += done
        progress.skipped += skipped
    current = BulkAction.objects.filter(pk=action.pk).values_list("skipped_items", flat=True).get()
    # The heartbeat rides on this write, once per chunk (about a second): a thread could not write it for
    # an action run in a request, whose row its own connection may not see yet. Losing the job rolls the
    # chunk back.
    progress.lease.beat_or_stop(
        done=progress.done_count,
        skipped=progress.skipped_count,
        skipped_items=(current + kept) if kept else current,
    )


def _undo_chunk(action: BulkAction, events: list[ReviewEvent], progress: _Progress) -> None:
    tag = action.tag
    user = action.created_by
    original = action.undoes
    implied_ids = set(original.implied_tag_ids or [])
    now = timezone.now()
    done: list[str] = []
    skipped: list[tuple[str, str]] = []
    ids = sorted({event.product_id for event in events})
    with transaction.atomic():
        products = _lock(ids)
        holders = _holder_names(p["claimed_by_id"] for p in products.values() if p["claimed_by_id"])
        reverted = set(
            ReviewEvent.objects.filter(reverts_id__in=[e.id for e in events]).values_list(
                "reverts_id", flat=True
            )
        )
        later: dict[int, list[tuple[dt.datetime, int]]] = {}
        for pid, event_id, created in (
            _among(ReviewEvent.objects.filter(reverted_by__isnull=True), "product", ids)
            .filter(Q(action=ReviewAction.SUBMIT) | Q(action=ReviewAction.BULK, tag_id=tag.pk))
            .values_list("product_id", "id", "created_at")
        ):
            later.setdefault(pid, []).append((created, event_id))
        tag_rows = _tag_rows(ids)
        restore: list[dict] = []
        deletions: dict[int, list[int]] = {}
        undo_events: list[dict] = []
        touched: list[int] = []
        for event in events:
            pid = event.product_id
            product = products.get(pid)
            if product is None or event.id in reverted:
                continue  # gone, or already reverted (a duplicate delivery of this undo)
            sku = product["external_id"]
            if any((created, eid) > (event.created_at, event.id) for created, eid in later.get(pid, [])):
                skipped.append((sku, "decided again since (a review or another bulk decision on this tag)"))
                continue
            reason = _claim_reason(product, user=user, holders=holders, now=now)
            if reason:
                skipped.append((sku, reason))
                continue
            rows = tag_rows.get(pid, [])
            present = {row["tag_id"]: row for row in rows}
            before_ids = {row["tag_id"] for row in event.previous_tags}
            names = {row["tag_id"]: row["tag__name"] for row in rows}
            if event.accepted:
                gone = [t for t in ({tag.pk} | implied_ids) if t not in before_ids and t in present]
                if gone:
                    deletions[pid] = gone
                    for t in gone:
                        names.pop(t, None)
            else:
                old = next((row for row in event.previous_tags if row["tag_id"] == tag.pk), None)
                if old is not None and tag.pk not in present:
                    restore.append(
                        {
                            "product_id": pid,
                            "tag_id": tag.pk,
                            "source": old["source"],
                            "approved_by_id": old["approved_by"],
                            "model_version_id": old["model_version"],
                            "approved_at": dt.datetime.fromisoformat(old["approved_at"]),
                        }
                    )
                    names[tag.pk] = tag.name
            undo_events.append(
                _event_row(
                    product_id=pid,
                    user_id=user.pk,
                    action=ReviewAction.UNDO,
                    created_at=now,
                    model_version_id=event.model_version_id,
                    reverts_id=event.id,
                    tag_id=tag.pk,
                    bulk_action_id=action.pk,
                    previous_tags=_snapshot(rows),
                    final_tags=_sorted_names(names.values()),
                )
            )
            if pid in deletions or (restore and restore[-1]["product_id"] == pid):
                touched.append(pid)
            done.append(sku)
        by_tag: dict[int, list[int]] = {}
        for pid, tag_ids in deletions.items():
            for tag_id in tag_ids:
                by_tag.setdefault(tag_id, []).append(pid)
        for tag_id, pids in by_tag.items():  # one DELETE per tag (T and its ancestors), not per product
            _among(ProductTag.objects.filter(tag_id=tag_id), "product", pids).delete()
        _insert(ProductTag, restore)
        _insert(ReviewEvent, undo_events)
        if touched:
            _among(Product.objects.all(), "id", touched).update(tags_updated_at=now, updated_at=now)
        _count(action, progress, done, skipped)
