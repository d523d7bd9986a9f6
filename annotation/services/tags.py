"""The tag taxonomy's use-cases: create, rename, move in the hierarchy, alias, (de)activate, merge.

Rules every entry point (API, taxonomy page, commands) gets from here:
- a name is taken once: no two tags, no tag and alias, no two aliases fold to the same key;
- the hierarchy stays a forest (a tag is never its own ancestor);
- a merged tag is a tombstone: it is inactive, points at its target (``merged_into``, one hop — tags merged
  into the source earlier are re-pointed), and its name resolves to the target as an alias;
- anything that changes what the export writes for a product (a tag's name, path or active state, a merge)
  stamps those products' ``tags_updated_at``, so an incremental export picks them up.

Errors: ``TagRuleError`` for input that breaks a rule (API 400) and ``TagConflictError`` when the current
state forbids the change (API 409); both name the request field they are about.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from annotation.models import Product, ProductTag, ReviewEvent, Suggestion, Tag, TagAlias, TagSource
from annotation.selectors.taxonomy import MAX_DEPTH
from annotation.taxonomy.locks import lock_taxonomy
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name

_AUDIT_LIST_FIELDS = ("previous_tags", "final_tags", "accepted", "rejected", "added", "removed")
_AUDIT_FIELDS = ("shown", *_AUDIT_LIST_FIELDS)


class TagRuleError(ValueError):
    """The request breaks a taxonomy rule (a bad name, a cycle)."""

    def __init__(self, message: str, *, field: str = "name") -> None:
        super().__init__(message)
        self.field = field


class TagConflictError(TagRuleError):
    """The taxonomy's current state forbids the change (a name in use, a merged tag)."""


# --- helpers (no transactions of their own) ---------------------------------------------------------------


def _clean_name(name: str) -> tuple[str, str]:
    try:
        return clean_tag_display_name(name), normalize_tag_name(name)
    except TagNameError as exc:
        raise TagRuleError(str(exc), field="name") from exc


def _holder_of(key: str) -> str | None:
    """Who holds a folded name already: a description for the error message, or None when it is free."""
    tag = Tag.objects.filter(normalized_name=key).first()
    if tag is not None:
        return f"tag {tag.name!r} (id {tag.pk})"
    alias = TagAlias.objects.select_related("tag").filter(normalized_name=key).first()
    if alias is not None:
        return f"an alias of tag {alias.tag.name!r} (id {alias.tag_id})"
    return None


def _lock_tags(*tags: Tag) -> list[Tag]:
    """Re-read the tags under a row lock, in primary-key order (no deadlock between two merges)."""
    locked = {
        t.pk: t for t in Tag.objects.select_for_update().filter(pk__in=[t.pk for t in tags]).order_by("pk")
    }
    return [locked[t.pk] for t in tags]


def _refuse_merged(tag: Tag, *, field: str = "id") -> None:
    if tag.merged_into_id is not None:
        raise TagConflictError(
            f"tag {tag.name!r} was merged into tag id {tag.merged_into_id}; change that tag instead",
            field=field,
        )


def _ancestor_ids(tag_id: int | None) -> list[int]:
    ancestors: list[int] = []
    while tag_id is not None and len(ancestors) <= MAX_DEPTH:
        ancestors.append(tag_id)
        tag_id = Tag.objects.filter(pk=tag_id).values_list("parent_id", flat=True).first()
    return ancestors


def _subtree_ids(tag_id: int) -> list[int]:
    ids, frontier = [tag_id], [tag_id]
    while frontier and len(ids) < 1_000_000:
        frontier = list(Tag.objects.filter(parent_id__in=frontier).values_list("id", flat=True))
        ids.extend(frontier)
    return ids


def _touch_products(tag_ids: Iterable[int], now: dt.datetime) -> int:
    """Stamp products carrying any of the tags: their exported record changes (incremental export)."""
    carriers = ProductTag.objects.filter(tag_id__in=list(tag_ids)).values("product_id")
    return Product.objects.filter(id__in=Subquery(carriers)).update(tags_updated_at=now)


def _rename(tag: Tag, name: str, now: dt.datetime) -> None:
    _refuse_merged(tag)
    display, key = _clean_name(name)
    if key != tag.normalized_name:
        own_alias = TagAlias.objects.filter(normalized_name=key, tag=tag).first()
        if own_alias is not None:
            own_alias.delete()  # the new name was an alias of this tag: it swaps with the old name
        else:
            holder = _holder_of(key)
            if holder is not None:
                raise TagConflictError(f"the name {display!r} is taken by {holder}")
        # The old name keeps resolving to this tag (imports and old files still name it).
        TagAlias.objects.create(tag=tag, name=tag.name, normalized_name=tag.normalized_name, created_at=now)
    if display == tag.name and key == tag.normalized_name:
        return
    tag.name, tag.normalized_name, tag.updated_at = display, key, now
    tag.save(update_fields=["name", "normalized_name", "updated_at"])
    _touch_products([tag.pk], now)


def _set_parent(tag: Tag, parent: Tag | None, now: dt.datetime) -> None:
    _refuse_merged(tag)
    if (parent.pk if parent else None) == tag.parent_id:
        return
    if parent is not None:
        _refuse_merged(parent, field="parent")
        if parent.pk == tag.pk:
            raise TagRuleError("a tag cannot be its own parent", field="parent")
        if tag.pk in _ancestor_ids(parent.pk):
            raise TagRuleError(
                f"{parent.name!r} is below {tag.name!r} in the hierarchy: moving {tag.name!r} under it would "
                "make a cycle",
                field="parent",
            )
    tag.parent, tag.updated_at = parent, now
    tag.save(update_fields=["parent", "updated_at"])
    _touch_products(_subtree_ids(tag.pk), now)  # every tag below has a new path


def _set_active(tag: Tag, active: bool, now: dt.datetime) -> None:
    if active:
        _refuse_merged(tag, field="is_active")
    if tag.is_active == active:
        return
    tag.is_active, tag.updated_at = active, now
    tag.save(update_fields=["is_active", "updated_at"])
    _touch_products([tag.pk], now)


# --- use-cases ---------------------------------------------------------------------------------------


def tag_create(*, name: str, parent: Tag | None = None, description: str = "") -> Tag:
    display, key = _clean_name(name)
    if parent is not None:
        _refuse_merged(parent, field="parent")
    holder = _holder_of(key)
    if holder is not None:
        raise TagConflictError(f"the name {display!r} is taken by {holder}")
    now = timezone.now()
    try:
        with transaction.atomic():
            return Tag.objects.create(
                name=display,
                normalized_name=key,
                parent=parent,
                description=description,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError as exc:  # a concurrent request created the same name
        raise TagConflictError(f"the name {display!r} is taken") from exc


def tag_rename(*, tag: Tag, name: str) -> Tag:
    """Rename a tag; its old name becomes an alias. Its products export under the new name."""
    with transaction.atomic():
        (tag,) = _lock_tags(tag)
        _rename(tag, name, timezone.now())
    return tag


def tag_set_parent(*, tag: Tag, parent: Tag | None) -> Tag:
    """Move a tag (and its subtree) under ``parent`` (None: make it a root). Refuses cycles."""
    with transaction.atomic():
        lock_taxonomy()
        (tag,) = _lock_tags(tag)
        _set_parent(tag, parent, timezone.now())
    return tag


def tag_alias_add(*, tag: Tag, name: str) -> TagAlias:
    """Another name for a tag. Refused when any tag or alias already folds to the same key."""
    display, key = _clean_name(name)
    _refuse_merged(tag)
    holder = _holder_of(key)
    if holder is not None:
        raise TagConflictError(f"the name {display!r} is taken by {holder}")
    try:
        with transaction.atomic():
            return TagAlias.objects.create(
                tag=tag, name=display, normalized_name=key, created_at=timezone.now()
            )
    except IntegrityError as exc:
        raise TagConflictError(f"the name {display!r} is taken") from exc


def tag_deactivate(*, tag: Tag) -> Tag:
    """Stop using a tag: no longer suggested or exported (the export lists it for deletion). Idempotent."""
    with transaction.atomic():
        (tag,) = _lock_tags(tag)
        _set_active(tag, False, timezone.now())
    return tag


def tag_activate(*, tag: Tag) -> Tag:
    """Undo a deactivation (not possible for a merged tag)."""
    with transaction.atomic():
        (tag,) = _lock_tags(tag)
        _set_active(tag, True, timezone.now())
    return tag


_UNSET = object()


def tag_update(
    *,
    tag: Tag,
    name: str | object = _UNSET,
    parent: Tag | None | object = _UNSET,
    is_active: bool | object = _UNSET,
    description: str | object = _UNSET,
) -> Tag:
    """Several changes to one tag in one transaction (the API's PATCH); each follows its use-case's rules."""
    with transaction.atomic():
        if parent is not _UNSET:
            lock_taxonomy()
        (tag,) = _lock_tags(tag)
        now = timezone.now()
        if name is not _UNSET:
            _rename(tag, name, now)
        if parent is not _UNSET:
            _set_parent(tag, parent, now)
        if is_active is not _UNSET:
            _set_active(tag, bool(is_active), now)
        if description is not _UNSET and description != tag.description:
            tag.description, tag.updated_at = description, now
            tag.save(update_fields=["description", "updated_at"])
    return tag


def _rewrite_audit(source: Tag, target: Tag) -> int:
    """Review events that name the source tag name the target instead.

    Event shapes (annotation.services.reviews): ``shown`` and ``previous_tags`` are lists of objects with
    ``tag`` (name) and ``tag_id``; ``final_tags``/``accepted``/``rejected``/``added``/``removed`` are lists
    of names (older events: ids). A name matches when it folds to the source's name or one of its aliases
    (a rename keeps the old name as an alias). Lists stay free of duplicates, so an undo of an old event
    restores each tag once.
    """
    aliases = list(TagAlias.objects.filter(tag=source).values_list("name", "normalized_name"))
    names = {source.name, *(name for name, _ in aliases)}
    keys = {source.normalized_name, *(key for _, key in aliases)}

    def is_source(value) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return value == source.pk
        if isinstance(value, str):
            try:
                return normalize_tag_name(value) in keys
            except TagNameError:
                return False
        return False

    def rewrite_names(values: list) -> list:
        out: list = []
        for value in values:
            if is_source(value):
                value = target.pk if isinstance(value, int) else target.name
            if value not in out:
                out.append(value)
        if all(isinstance(value, str) for value in out):
            out.sort(key=str.casefold)
        return out

    def rewrite_rows(rows: list, *, higher_score_wins: bool) -> list:
        """Rows naming the source name the target; when the target is there too, one row remains: the
        higher score (``shown``) or the target's own row (``previous_tags``, what an undo restores)."""
        kept: dict = {}
        for row in rows:
            if not isinstance(row, dict):
                kept[id(row)] = row
                continue
            original = row.get("tag_id")
            if original == source.pk:
                row = {**row, "tag_id": target.pk, "tag": target.name}
            key = row.get("tag_id")
            if key not in kept:
                kept[key] = row
            elif higher_score_wins:
                if (row.get("score") or 0) > (kept[key].get("score") or 0):
                    kept[key] = row
            elif original == target.pk:
                kept[key] = row
        return list(kept.values())

    events = ReviewEvent.objects.all()
    if connection.vendor == "postgresql":  # JSON containment narrows the scan on PostgreSQL only
        match = Q(shown__contains=[{"tag_id": source.pk}]) | Q(
            previous_tags__contains=[{"tag_id": source.pk}]
        )
        for field in _AUDIT_LIST_FIELDS[1:]:
            match |= Q(**{f"{field}__contains": [source.pk]})
            for name in names:
                match |= Q(**{f"{field}__contains": [name]})
        events = events.filter(match)
    changed: list[ReviewEvent] = []
    for event in events.iterator(chunk_size=2000):
        before = [getattr(event, field) for field in _AUDIT_FIELDS]
        if isinstance(event.shown, list):
            event.shown = rewrite_rows(event.shown, higher_score_wins=True)
        if isinstance(event.previous_tags, list):
            event.previous_tags = rewrite_rows(event.previous_tags, higher_score_wins=False)
        for field in _AUDIT_LIST_FIELDS[1:]:
            values = getattr(event, field)
            if isinstance(values, list):
                setattr(event, field, rewrite_names(values))
        if [getattr(event, field) for field in _AUDIT_FIELDS] != before:
            changed.append(event)
    ReviewEvent.objects.bulk_update(changed, list(_AUDIT_FIELDS), batch_size=1000)
    return len(changed)


def tag_merge(*, source: Tag, target: Tag) -> Tag:
    """Merge ``source`` into ``target`` atomically and return the target.

    Approved tags move (a product that had both keeps the target's approval; moved ones get source
    ``merge`` and keep who approved them and when), suggestions move (a clash keeps the higher score),
    review events and aliases follow, children move under the target, tags merged into the source earlier
    now point at the target, and the source becomes an inactive tombstone whose name is an alias of the
    target.
    """
    if source.pk == target.pk:
        raise TagRuleError("a tag cannot be merged into itself", field="into")
    with transaction.atomic():
        lock_taxonomy()
        source, target = _lock_tags(source, target)
        if source.merged_into_id is not None:
            raise TagConflictError(
                f"tag {source.name!r} was already merged into tag id {source.merged_into_id}", field="id"
            )
        _refuse_merged(target, field="into")
        if not target.is_active:
            raise TagConflictError(f"tag {target.name!r} is deactivated; activate it first", field="into")
        if source.pk in _ancestor_ids(target.parent_id):
            raise TagRuleError(
                f"{target.name!r} is below {source.name!r} in the hierarchy; move it out before merging",
                field="into",
            )
        now = timezone.now()
        _touch_products([source.pk], now)  # before the move: afterwards they are mixed with the target's

        on_target = ProductTag.objects.filter(product_id=OuterRef("product_id"), tag=target)
        ProductTag.objects.filter(tag=source).filter(Exists(on_target)).delete()
        ProductTag.objects.filter(tag=source).update(tag=target, source=TagSource.MERGE)

        twin = Suggestion.objects.filter(
            tag=source, product_id=OuterRef("product_id"), model_version_id=OuterRef("model_version_id")
        )
        Suggestion.objects.filter(tag=target).filter(Exists(twin)).update(
            score=Greatest(F("score"), Subquery(twin.values("score")[:1])),
            selected=Case(When(Exists(twin.filter(selected=True)), then=Value(True)), default=F("selected")),
        )
        target_twin = Suggestion.objects.filter(
            tag=target, product_id=OuterRef("product_id"), model_version_id=OuterRef("model_version_id")
        )
        Suggestion.objects.filter(tag=source).filter(Exists(target_twin)).delete()
        Suggestion.objects.filter(tag=source).update(tag=target)

        _rewrite_audit(source, target)  # before the aliases move: it matches the source's old names
        # Bulk decisions on the source are decisions on the target (the candidate grid's status filter).
        ReviewEvent.objects.filter(tag=source).update(tag=target)
        TagAlias.objects.filter(tag=source).update(tag=target)
        TagAlias.objects.update_or_create(
            normalized_name=source.normalized_name, defaults={"tag": target, "name": source.name}
        )
        Tag.objects.filter(parent=source).update(parent=target, updated_at=now)
        Tag.objects.filter(merged_into=source).update(merged_into=target, updated_at=now)
        source.merged_into, source.is_active, source.updated_at = target, False, now
        source.save(update_fields=["merged_into", "is_active", "updated_at"])
        target.updated_at = now
        target.save(update_fields=["updated_at"])
    return target
