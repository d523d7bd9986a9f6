"""The review workflow's writes: claim, release, skip, submit, undo, and the expired-claim sweep.

One function per use-case, each its own transaction. The HTML views and the REST API call these same
functions, so both paths obey the same rules:

- **Claims** are leases (``REVIEW_CLAIM_TTL_SECONDS``). The next product is taken from the queue index
  with ``SELECT … FOR UPDATE SKIP LOCKED``: two operators claiming at the same moment lock different
  rows, and PostgreSQL re-checks a row changed by a committed claim before handing it out, so a product
  is never held by two people. An expired claim is free again without any sweep; the periodic sweep
  (``claims_release_expired``) only tidies the columns. A user holds one claim at a time.
- **Submit** writes the final tag set, one ``ReviewEvent`` (what was shown with its model version and
  scores, accepted, rejected, added, removed, the previous tags, whether the operator edited the card)
  and the product's new state in one transaction. 409 (``ClaimConflict``) when another user holds a
  live claim.
- **Claim tokens**: every new claim gets a fresh token (``Product.claim_token``), which the card carries.
  A submit naming a token is accepted once: the first stores its event with the token (unique in the
  database, and taken under the product's row lock), a repeat with the same body by the same user gets
  that first event back (``replayed``; no second event, no second retrain count), and any other use of a
  used or replaced token is ``ClaimStale`` ("changed since you opened it"). Submit, skip and release
  clear the token. A submit without a token behaves as before tokens existed.
- **No tag applies**: saving zero tags when the model selected some needs ``no_tag_applies=True``
  (``NoTagsUnconfirmed`` otherwise); callers that predate the rule pass ``None``. Names resolve under
  annotation.taxonomy.resolver's rules: unknown names are refused (``UnknownTags``) unless the user is an
  admin, who creates them; a deactivated tag is refused unless the product already carries it.
- **Hierarchy closure** (setting ``TAGSTUDIO_HIERARCHY_CLOSURE``, default on): approving a tag also
  approves its ancestors (source ``hierarchy``), so "sneakers" implies "shoes" wherever the taxonomy
  says so.
- **Undo** restores the tags before a submit exactly (rows, sources and approvers), records an ``undo``
  event that points at the submit, and gives the product back to the user under a fresh claim.

Audit JSON shapes (ReviewEvent): ``shown`` = [{"tag", "tag_id", "score", "selected", "model_version",
"visible"}] (``visible``: on the card, not behind "more"; only visible unchecked chips count as rejected);
``accepted``/``rejected``/``added``/``removed``/``final_tags`` = lists of tag names; ``previous_tags`` =
[{"tag", "tag_id", "source", "approved_by", "model_version", "approved_at"}] (the rows undo restores).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import (
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
from annotation.selectors.review import (
    card_prechecked_tag_ids,
    claim_is_live,
    claim_ttl,
    precheck_selected,
    recently_skipped_ids,
    review_queue,
)
from annotation.selectors.taxonomy import hierarchy_closure_enabled as closure_setting
from annotation.services.auto_approval import auto_approval_review_record, auto_approval_review_undone
from annotation.services.training import reviews_submitted_hook
from annotation.taxonomy.resolver import TagResolver

logger = logging.getLogger(__name__)


class ReviewError(Exception):
    """A review request that cannot be carried out; the message is shown to the user as is."""


class ClaimConflict(ReviewError):
    def __init__(self, product: Product, holder_name: str) -> None:
        self.product = product
        self.holder_name = holder_name
        super().__init__(
            f"{product.external_id} is being reviewed by {holder_name} (claim until "
            f"{timezone.localtime(product.claim_expires_at):%H:%M:%S})."
        )


class UnknownTags(ReviewError):
    """Tag names that name no active tag. ``names`` lists them exactly as they were submitted."""

    def __init__(self, names: Sequence[str], *, inactive: Sequence[str] = (), invalid: Sequence[str] = ()):
        self.names = list(names) + list(inactive) + list(invalid)
        parts = []
        if names:
            parts.append(
                f"Unknown tag{'s' if len(names) > 1 else ''}: {', '.join(names)}. "
                "Only admins can create new tags; pick an existing tag or ask an admin."
            )
        if inactive:
            parts.append(f"Deactivated tag{'s' if len(inactive) > 1 else ''}: {', '.join(inactive)}.")
        if invalid:
            parts.append(f"Not a valid tag name: {', '.join(repr(name) for name in invalid)}.")
        super().__init__(" ".join(parts))


class NothingToUndo(ReviewError):
    pass


class ClaimStale(ReviewError):
    """The card's claim token is no longer the product's: it was submitted (with other tags), skipped,
    released or claimed again since the card was opened."""

    def __init__(self, product: Product) -> None:
        self.product = product
        super().__init__(
            f"{product.external_id} changed since you opened it (it was saved, skipped or claimed again "
            "in the meantime): your changes were not saved."
        )


class NoTagsUnconfirmed(ReviewError):
    """Zero tags submitted although the model selected some, without ``no_tag_applies``."""

    def __init__(self, product: Product, suggested: Sequence[str]) -> None:
        self.product = product
        self.suggested = list(suggested)
        super().__init__(
            f"No tag is checked, but the model suggested {', '.join(self.suggested)}. "
            "Confirm that no tag applies, or check the tags that do."
        )


# The most tags one review may set: the HTML form and the REST serializer both refuse a longer list.
MAX_TAGS_PER_REVIEW = 200


def hierarchy_closure_enabled() -> bool:
    """The admin's choice on the taxonomy page, else the deployment default (one rule for all callers)."""
    return closure_setting()


def _holder_name(product: Product) -> str:
    User = get_user_model()
    user = User.objects.filter(pk=product.claimed_by_id).only("username").first()
    return user.username if user else "another user"


def _lock_product(product: Product | int) -> Product:
    pk = product.pk if isinstance(product, Product) else product
    return Product.objects.select_for_update(of=("self",)).select_related("suggested_by").get(pk=pk)


def _lock_user(user) -> None:
    """Serialize one user's claim requests (a double click must not take two products)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).get()


def _release_other_claims(*, user, keep_id: int | None) -> None:
    others = Product.objects.filter(claimed_by=user)
    if keep_id is not None:
        others = others.exclude(pk=keep_id)
    others.update(claimed_by=None, claim_expires_at=None, claim_token=None)


def _set_claim(product: Product, *, user, now: dt.datetime) -> Product:
    """Claim (or renew) ``product`` for ``user``. A renewal of the user's own live claim keeps its token,
    so every card of that claim (two tabs, a repeated review/next) stays valid; a new claim gets a new one."""
    renewal = product.claimed_by_id == user.pk and claim_is_live(product, now=now) and product.claim_token
    if not renewal:
        product.claim_token = uuid.uuid4()
    product.claimed_by = user
    product.claim_expires_at = now + claim_ttl()
    product.save(update_fields=["claimed_by", "claim_expires_at", "claim_token"])
    return product


# --- Claims ----------------------------------------------------------------------------------------------


def review_claim_next(*, user) -> Product | None:
    """Claim the next product of the queue for ``user`` (or renew the claim they already hold).

    Returns None when nothing is left for this user (products they skipped within
    ``REVIEW_SKIP_HIDE_SECONDS`` are not offered to them again, but stay in everyone else's queue).
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        _lock_user(user)
        held = (
            Product.objects.select_for_update(of=("self",))
            .select_related("suggested_by")
            .filter(claimed_by=user, claim_expires_at__gt=now)
            .order_by("claim_expires_at", "id")
            .first()
        )
        if held is not None:
            return _set_claim(held, user=user, now=now)
        product = (
            review_queue(now=now)
            .exclude(pk__in=recently_skipped_ids(user=user, now=now))
            .select_related("suggested_by")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if product is None:
            return None
        # No other live claim of this user exists (checked above, under the user lock); expired ones
        # are free already and the periodic sweep clears their columns.
        return _set_claim(product, user=user, now=now)


def review_claim(*, product: Product, user) -> Product:
    """Claim a given product (opened from the product list) to review or re-review it.

    Releases any other claim of the user. ClaimConflict when someone else holds a live claim.
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        _lock_user(user)
        locked = _lock_product(product)
        if claim_is_live(locked, now=now) and locked.claimed_by_id != user.pk:
            raise ClaimConflict(locked, _holder_name(locked))
        _release_other_claims(user=user, keep_id=locked.pk)
        return _set_claim(locked, user=user, now=now)


def review_release(*, product: Product, user) -> bool:
    """Give a claim back to the queue. True when a claim was released, False when there was none.

    The holder releases their own claim; an admin may release anyone's. ClaimConflict otherwise.
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        locked = _lock_product(product)
        return _release(locked, user=user, now=now)


def _release(locked: Product, *, user, now: dt.datetime) -> bool:
    if locked.claimed_by_id is None:
        return False
    if locked.claimed_by_id != user.pk and claim_is_live(locked, now=now) and not is_admin(user):
        raise ClaimConflict(locked, _holder_name(locked))
    locked.claimed_by = None
    locked.claim_expires_at = None
    locked.claim_token = None
    locked.save(update_fields=["claimed_by", "claim_expires_at", "claim_token"])
    return True


def review_skip(*, product: Product, user, claim: str | uuid.UUID | None = None) -> ReviewEvent:
    """Skip: release the claim and record a skip event (the product leaves this user's queue for a while).

    With the card's ``claim`` token, a card that went stale (saved, skipped or claimed again since) is
    refused with ClaimStale instead of recording a skip of a product the card no longer stands for.
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        locked = _lock_product(product)
        if claim is not None:
            token = _claim_uuid(claim)
            if token is None or token != locked.claim_token:
                raise ClaimStale(locked)
        _release(locked, user=user, now=now)
        shown = _shown_rows(locked, version_id=locked.suggested_by_id)
        return ReviewEvent.objects.create(
            product=locked,
            user=user,
            action=ReviewAction.SKIP,
            created_at=now,
            model_version_id=locked.suggested_by_id,
            shown=[_shown_json(s, locked) for s in shown],
        )


def claims_release_expired() -> int:
    """Clear expired claims (they are already free to claim; this keeps the columns tidy). Returns count.

    The claim token stays: nothing changed the product, so its holder's card may still be submitted
    until someone claims it again (which replaces the token)."""
    with transaction.atomic(durable=True):
        return Product.objects.filter(claimed_by__isnull=False, claim_expires_at__lte=timezone.now()).update(
            claimed_by=None, claim_expires_at=None
        )


# --- Submit ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedTags:
    tags: dict[int, Tag]  # canonical tag id -> tag, in submission order
    created: list[str]


def _resolve_submitted(names: Sequence[str], *, user, keep: set[int]) -> ResolvedTags:
    """The submitted names (names, aliases, merged names) as canonical tags, under the resolver's rules:
    unknown names become tags only for admins, a deactivated tag only stays where the product has it."""
    resolver = TagResolver(preload=False)
    resolution = resolver.resolve_to_apply(names, create=False, keep=keep)
    # Admins create unknown tags, but only when nothing else is wrong (asked only then: most submits
    # name known tags).
    if resolution.unknown and not resolution.inactive and not resolution.invalid and is_admin(user):
        resolution = resolver.resolve_to_apply(names, create=True, keep=keep)
    if resolution.refused:
        raise UnknownTags(resolution.unknown, inactive=resolution.inactive, invalid=resolution.invalid)
    ids = list(dict.fromkeys(resolution.tags[name] for name in names if name in resolution.tags))
    by_id = Tag.objects.in_bulk(ids)
    return ResolvedTags(tags={tag_id: by_id[tag_id] for tag_id in ids}, created=resolution.created)


def _ancestors(tag_ids: Iterable[int]) -> dict[int, Tag]:
    """All ancestors of the given tags, in one recursive query (UNION stops on a cycle).

    A merged ancestor counts as the tag it was merged into; deactivated ancestors are left out.
    """
    ids = list(tag_ids)
    if not ids:
        return {}
    table = Tag._meta.db_table
    placeholders = ", ".join(["%s"] * len(ids))
    ancestors = Tag.objects.raw(
        f"""
        WITH RECURSIVE chain(id, parent_id) AS (
            SELECT id, parent_id FROM {table} WHERE id IN ({placeholders})
            UNION
            SELECT t.id, t.parent_id FROM {table} t JOIN chain c ON t.id = c.parent_id
        )
        SELECT * FROM {table} WHERE id IN (SELECT parent_id FROM chain WHERE parent_id IS NOT NULL)
        """,
        ids,
    )
    found: dict[int, Tag] = {}
    merged_into: set[int] = set()
    for tag in ancestors:
        if tag.merged_into_id:
            merged_into.add(tag.merged_into_id)
        elif tag.is_active:
            found[tag.id] = tag
    if merged_into:
        found.update({tag.id: tag for tag in Tag.objects.filter(id__in=merged_into, is_active=True)})
    return found


def tag_ancestors(tag_ids: Iterable[int]) -> dict[int, Tag]:
    """The active ancestors of the given tags (what hierarchy closure approves along with them)."""
    return _ancestors(tag_ids)


def _shown_rows(product: Product, *, version_id: int | None) -> list[Suggestion]:
    if version_id is None:
        return []
    return list(
        Suggestion.objects.filter(product=product, model_version_id=version_id)
        .select_related("tag", "model_version")
        .order_by("-score", "tag__name")
    )


def _shown_json(suggestion: Suggestion, product: Product, *, visible: bool = True) -> dict:
    return {
        "tag": suggestion.tag.name,
        "tag_id": suggestion.tag_id,
        "score": round(float(suggestion.score), 6),
        "selected": suggestion.selected,
        "model_version": suggestion.model_version.version,
        "visible": visible,
    }


def _snapshot(rows: Iterable[ProductTag]) -> list[dict]:
    return [
        {
            "tag": row.tag.name,
            "tag_id": row.tag_id,
            "source": row.source,
            "approved_by": row.approved_by_id,
            "model_version": row.model_version_id,
            "approved_at": row.approved_at.isoformat(),
        }
        for row in sorted(rows, key=lambda r: r.tag.name.casefold())
    ]


def _names(tags: Iterable[Tag]) -> list[str]:
    return sorted((tag.name for tag in tags), key=str.casefold)


def _submit_digest(tags: Sequence[str]) -> str:
    """What a submit asked for, independent of order, case and spacing: a repeat with the same digest
    and claim token is the same submit sent twice."""
    names = sorted({" ".join(name.split()).casefold() for name in tags})
    return hashlib.sha256(json.dumps(names, ensure_ascii=False).encode()).hexdigest()


def _claim_uuid(claim: str | uuid.UUID | None) -> uuid.UUID | None:
    if claim is None or isinstance(claim, uuid.UUID):
        return claim
    try:
        return uuid.UUID(str(claim))
    except ValueError:
        return None  # not a token we ever issued: stale (checked against the product's token)


def _replay_or_stale(*, product: Product, user, claim: str | uuid.UUID, digest: str) -> ReviewEvent | None:
    """The first submit of this claim token when this is a repeat of it; ClaimStale when the token was
    used for something else; None when the token is unused."""
    token = _claim_uuid(claim)
    first = (
        ReviewEvent.objects.filter(claim_token=token).select_related("product", "model_version").first()
        if token is not None
        else None
    )
    if first is not None:
        if first.user_id == user.pk and first.product_id == product.pk and first.submit_digest == digest:
            first.replayed = True
            return first
        raise ClaimStale(product)
    if token is None or product.claim_token != token:
        raise ClaimStale(product)
    return None


def review_submit(
    *,
    product: Product,
    user,
    tags: Sequence[str],
    shown_version_id: int | None = None,
    claim: str | uuid.UUID | None = None,
    no_tag_applies: bool | None = None,
    visible_tag_ids: Collection[int] | None = None,
    prechecked: bool | None = None,
) -> ReviewEvent:
    """Record the operator's final tags for a product; returns the audit event.

    ``tags`` are the final tag names (names or aliases). ``shown_version_id`` is the model version whose
    suggestions the card showed (the HTML card posts it; default: the product's current suggestions).
    ``claim`` is the card's claim token: a repeat of the same submit returns the first event (with
    ``replayed`` set, nothing written); a used or replaced token raises ClaimStale. ``no_tag_applies``
    confirms an empty tag list when the model selected tags (False or None-with-a-claim: refused with
    NoTagsUnconfirmed; None without a claim: the pre-token contract, no confirmation asked).
    ``visible_tag_ids``: the suggestions the card displayed (default all); only those left unchecked are
    recorded as rejected. ``prechecked``: the card started with the model's selected tags checked (those
    ``card_prechecked_tag_ids`` names; default: the REVIEW_PRECHECK_SELECTED setting); ``edited`` is
    measured against that start.
    """
    digest = _submit_digest(tags)
    try:
        return _review_submit(
            product=product,
            user=user,
            tags=tags,
            shown_version_id=shown_version_id,
            claim=claim,
            digest=digest,
            no_tag_applies=no_tag_applies,
            visible_tag_ids=visible_tag_ids,
            prechecked=precheck_selected() if prechecked is None else prechecked,
        )
    except IntegrityError:
        # The token's unique constraint fired: a concurrent submit of the same card got in first (the
        # row lock makes this rare). Answer as a repeat of it, or as stale.
        if claim is None:
            raise
        with transaction.atomic(durable=True):
            replay = _replay_or_stale(product=_lock_product(product), user=user, claim=claim, digest=digest)
        if replay is None:
            raise
        return replay


def _review_submit(
    *,
    product: Product,
    user,
    tags: Sequence[str],
    shown_version_id: int | None,
    claim: str | uuid.UUID | None,
    digest: str,
    no_tag_applies: bool | None,
    visible_tag_ids: Collection[int] | None,
    prechecked: bool,
) -> ReviewEvent:
    now = timezone.now()
    with transaction.atomic(durable=True):
        locked = _lock_product(product)
        if claim is not None:
            # Under the row lock: a concurrent submit of the same card has committed its event by now.
            replay = _replay_or_stale(product=locked, user=user, claim=claim, digest=digest)
            if replay is not None:
                return replay
        if claim_is_live(locked, now=now) and locked.claimed_by_id != user.pk:
            raise ClaimConflict(locked, _holder_name(locked))
        previous = list(ProductTag.objects.filter(product=locked).select_related("tag"))
        resolved = _resolve_submitted(tags, user=user, keep={row.tag_id for row in previous})
        version_id = locked.suggested_by_id if shown_version_id is None else shown_version_id
        shown = _shown_rows(locked, version_id=version_id)
        if not resolved.tags and (no_tag_applies is False or (no_tag_applies is None and claim is not None)):
            suggested = _names(s.tag for s in shown if s.selected)
            if suggested:
                raise NoTagsUnconfirmed(locked, suggested)

        chosen = dict(resolved.tags)
        implied = _ancestors(chosen) if hierarchy_closure_enabled() else {}
        final = {**chosen, **{tag_id: tag for tag_id, tag in implied.items() if tag_id not in chosen}}
        previous_ids = {row.tag_id for row in previous}
        shown_ids = {s.tag_id: s for s in shown}
        visible = {s.tag_id for s in shown} if visible_tag_ids is None else set(visible_tag_ids)
        starting = previous_ids | card_prechecked_tag_ids(shown, prechecked=prechecked)

        removed_ids = previous_ids - set(final)
        if removed_ids:
            ProductTag.objects.filter(product=locked, tag_id__in=removed_ids).delete()
        ProductTag.objects.bulk_create(
            [
                ProductTag(
                    product=locked,
                    tag_id=tag_id,
                    source=TagSource.REVIEW if tag_id in chosen else TagSource.HIERARCHY,
                    approved_by=user,
                    model_version_id=shown_ids[tag_id].model_version_id if tag_id in shown_ids else None,
                    approved_at=now,
                )
                for tag_id in final
                if tag_id not in previous_ids
            ]
        )
        locked.review_status = ReviewStatus.REVIEWED
        locked.claimed_by = None
        locked.claim_expires_at = None
        locked.claim_token = None
        locked.tags_updated_at = now
        locked.updated_at = now
        locked.save(
            update_fields=[
                "review_status",
                "claimed_by",
                "claim_expires_at",
                "claim_token",
                "tags_updated_at",
                "updated_at",
            ]
        )

        previous_by_id = {row.tag_id: row.tag for row in previous}
        event = ReviewEvent.objects.create(
            product=locked,
            user=user,
            action=ReviewAction.SUBMIT,
            created_at=now,
            model_version_id=version_id if shown else None,
            shown=[_shown_json(s, locked, visible=s.tag_id in visible) for s in shown],
            previous_tags=_snapshot(previous),
            final_tags=_names(final.values()),
            accepted=_names(s.tag for s in shown if s.tag_id in final),
            rejected=_names(s.tag for s in shown if s.tag_id not in final and s.tag_id in visible),
            added=_names(
                tag
                for tag_id, tag in chosen.items()
                if tag_id not in shown_ids and tag_id not in previous_ids
            ),
            removed=_names(previous_by_id[tag_id] for tag_id in removed_ids),
            claim_token=_claim_uuid(claim),
            submit_digest=digest if claim is not None else "",
            prechecked=prechecked,
            edited=set(chosen) != starting,
        )
        if shown:
            event.model_version = shown[0].model_version  # already loaded: spares the caller a query
        # The review's decision wins over the model's: kept model pairs become this reviewer's, and an
        # audited product's outcome is counted for its version.
        auto_approval_review_record(
            product=locked,
            previous=previous,
            final_ids=set(final),
            chosen_ids=set(chosen),
            user=user,
            event=event,
            now=now,
        )
        _notify_learning_loop()
    if resolved.created:
        logger.info("review by %s created tags %s", user.username, ", ".join(resolved.created))
    return event


def _notify_learning_loop() -> None:
    """After commit, tell the learning loop a review landed (it decides whether to retrain)."""
    transaction.on_commit(reviews_submitted_hook)


# --- Undo ------------------------------------------------------------------------------------------------


def review_undo(*, user, event: ReviewEvent | None = None) -> ReviewEvent:
    """Revert a submit: restore the tags it replaced and reopen the product for ``user`` under a claim.

    Without ``event``: the user's last submit, if made within the claim TTL (the review page's "undo").
    With ``event`` (the product page): the product's latest submit, by this user or — for admins — anyone.
    Refused when the product was reviewed again since, or someone else holds it now.
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        _lock_user(user)
        if event is None:
            event = (
                ReviewEvent.objects.filter(
                    user=user,
                    action=ReviewAction.SUBMIT,
                    reverted_by__isnull=True,
                    created_at__gte=now - claim_ttl(),
                )
                .order_by("-created_at", "-id")
                .first()
            )
            if event is None:
                raise NothingToUndo(
                    f"Nothing to undo: you have no review from the last {int(claim_ttl().total_seconds()) // 60} minutes. "
                    "Open the product from the product list to change an older review."
                )
        if event.action != ReviewAction.SUBMIT:
            raise NothingToUndo("Only a submitted review can be undone.")
        if event.user_id != user.pk and not is_admin(user):
            raise NothingToUndo("Only the reviewer who submitted it, or an admin, can undo a review.")
        locked = _lock_product(event.product_id)
        if ReviewEvent.objects.filter(reverts=event).exists():
            raise NothingToUndo("This review was already undone.")
        later = ReviewEvent.objects.filter(
            product=locked, action=ReviewAction.SUBMIT, reverted_by__isnull=True
        ).exclude(pk=event.pk)
        # A bulk decision on one of its tags since also counts: restoring the tags before this submit
        # would silently revert it.
        decided_since = later | ReviewEvent.objects.filter(
            product=locked, action=ReviewAction.BULK, reverted_by__isnull=True
        )
        if (
            decided_since.filter(created_at__gt=event.created_at).exists()
            or decided_since.filter(created_at=event.created_at, pk__gt=event.pk).exists()
        ):
            raise NothingToUndo(f"{locked.external_id} was reviewed again since; open it to change its tags.")
        if claim_is_live(locked, now=now) and locked.claimed_by_id != user.pk:
            raise ClaimConflict(locked, _holder_name(locked))

        current = list(ProductTag.objects.filter(product=locked).select_related("tag"))
        ProductTag.objects.filter(product=locked).delete()
        restored = [
            ProductTag(
                product=locked,
                tag_id=row["tag_id"],
                source=row["source"],
                approved_by_id=row["approved_by"],
                model_version_id=row["model_version"],
                approved_at=dt.datetime.fromisoformat(row["approved_at"]),
            )
            for row in event.previous_tags
        ]
        existing_tag_ids = set(
            Tag.objects.filter(id__in=[r.tag_id for r in restored]).values_list("id", flat=True)
        )
        ProductTag.objects.bulk_create([r for r in restored if r.tag_id in existing_tag_ids])
        # Reviewed before this submit iff an earlier submit is still in force.
        reviewed_before = later.filter(created_at__lte=event.created_at).exists()
        locked.review_status = ReviewStatus.REVIEWED if reviewed_before else ReviewStatus.UNREVIEWED
        locked.tags_updated_at = now
        locked.updated_at = now
        locked.save(update_fields=["review_status", "tags_updated_at", "updated_at"])
        _release_other_claims(user=user, keep_id=locked.pk)
        _set_claim(locked, user=user, now=now)
        auto_approval_review_undone(event=event)
        # accepted/rejected/added stay empty: they describe a card decision, and an undo is not one.
        return ReviewEvent.objects.create(
            product=locked,
            user=user,
            action=ReviewAction.UNDO,
            created_at=now,
            model_version_id=event.model_version_id,
            reverts=event,
            previous_tags=_snapshot(current),
            final_tags=sorted((row["tag"] for row in event.previous_tags), key=str.casefold),
        )
