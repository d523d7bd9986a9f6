"""Taxonomy reads: the tag tree level by level, search, merge previews, and the maps the model uses.

Built for 10,000+ tags: the tree is read one level at a time (children on expand), lists are capped
and continued by keyset on the folding key, and counts are computed only for the tags on screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from annotation.models import ProductTag, ReviewEvent, Setting, Suggestion, Tag, TagAlias
from annotation.taxonomy.names import TagNameError, normalize_tag_name

HIERARCHY_CLOSURE_SETTING = "hierarchy_closure"
TREE_PAGE_SIZE = 200
SEARCH_LIMIT = 50
MAX_DEPTH = 64  # guard for the ancestor walks (real taxonomies are a handful of levels deep) and against
# a parent cycle written behind the services' back

TagKey = Literal["name", "normalized_name"]


# --- maps for the model's post-processing (mlcore.postprocess.PostProcessConfig) --------------------


def _canonical_tags():
    """Tags that are themselves labels: not merged away into another tag."""
    return Tag.objects.filter(merged_into__isnull=True)


def taxonomy_parents_map(*, key: TagKey = "name") -> dict[str, str | None]:
    """Every canonical tag -> its parent (None for a root), keyed by display name (or folding key).

    Feeds ``PostProcessConfig.parents`` so that hierarchy closure at predict time uses the taxonomy.
    """
    rows = _canonical_tags().values_list("id", key, "parent_id")
    label = {tag_id: value for tag_id, value, _ in rows}
    return {value: label.get(parent_id) if parent_id is not None else None for _, value, parent_id in rows}


def taxonomy_inactive_tags(*, key: TagKey = "name") -> set[str]:
    """Deactivated canonical tags: never suggested (``PostProcessConfig.blocked``), kept on old products."""
    return set(_canonical_tags().filter(is_active=False).values_list(key, flat=True))


def hierarchy_closure_enabled() -> bool:
    """Whether accepting a child tag implies its ancestors.

    The admin's choice on the taxonomy page (Setting ``hierarchy_closure``) wins; until one is made,
    the deployment default ``settings.TAGSTUDIO_HIERARCHY_CLOSURE`` (on when unset).
    """
    value = Setting.objects.filter(key=HIERARCHY_CLOSURE_SETTING).values_list("value", flat=True).first()
    if value is None:
        return bool(getattr(settings, "TAGSTUDIO_HIERARCHY_CLOSURE", True))
    return bool(value)


# --- browsing ---------------------------------------------------------------------------------------


def taxonomy_counts() -> dict[str, int]:
    """The taxonomy page's totals: canonical tags, deactivated ones among them, aliases."""
    return {
        "tag_total": Tag.objects.filter(merged_into__isnull=True).count(),
        "inactive_total": Tag.objects.filter(merged_into__isnull=True, is_active=False).count(),
        "alias_total": TagAlias.objects.count(),
    }


def _annotate_counts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Approved products and child tags per listed tag: two grouped queries over the tags on screen."""
    ids = [row["id"] for row in rows]
    products = dict(
        ProductTag.objects.filter(tag_id__in=ids)
        .values("tag_id")
        .annotate(n=Count("id"))
        .values_list("tag_id", "n")
    )
    children = dict(
        Tag.objects.filter(parent_id__in=ids, merged_into__isnull=True)
        .values("parent_id")
        .annotate(n=Count("id"))
        .values_list("parent_id", "n")
    )
    for row in rows:
        row["product_count"] = products.get(row["id"], 0)
        row["child_count"] = children.get(row["id"], 0)
    return rows


_TAG_FIELDS = ("id", "name", "normalized_name", "parent_id", "is_active")


def tag_children(
    *,
    parent_id: int | None,
    after: str | None = None,
    limit: int = TREE_PAGE_SIZE,
    include_inactive: bool = True,
) -> dict[str, Any]:
    """One level of the tree (roots when ``parent_id`` is None), alphabetical, ``limit`` at a time.

    ``after`` is the folding key of the last tag already shown (keyset continuation, tag_parent_name_idx).
    """
    tags = _canonical_tags().filter(parent_id=parent_id)
    if not include_inactive:
        tags = tags.filter(is_active=True)
    if after:
        tags = tags.filter(normalized_name__gt=after)
    rows = list(tags.order_by("normalized_name").values(*_TAG_FIELDS)[: limit + 1])
    more = len(rows) > limit
    rows = _annotate_counts(rows[:limit])
    return {"parent_id": parent_id, "tags": rows, "next_after": rows[-1]["normalized_name"] if more else None}


def _name_or_alias_contains(folded: str) -> Q:
    """A tag whose folded name or one of whose aliases contains ``folded`` (a folded query)."""
    alias_hits = TagAlias.objects.filter(tag_id=OuterRef("pk"), normalized_name__contains=folded)
    return Q(normalized_name__contains=folded) | Exists(alias_hits)


def tag_search(query: str, *, limit: int = SEARCH_LIMIT, active_only: bool = False) -> list[dict[str, Any]]:
    """Tags whose name or an alias contains the query (folded as tag names are), best matches first.

    A merged-away tag is found under its new home: its name became an alias there.
    """
    try:
        folded = normalize_tag_name(query)
    except TagNameError:
        return []
    tags = _canonical_tags().filter(_name_or_alias_contains(folded))
    if active_only:
        tags = tags.filter(is_active=True)
    rows = list(tags.values(*_TAG_FIELDS)[: limit * 4])
    # Exact match, then prefix match, then shorter names: what a person typing a name expects.
    rows.sort(
        key=lambda r: (
            r["normalized_name"] != folded,
            not r["normalized_name"].startswith(folded),
            len(r["normalized_name"]),
            r["normalized_name"],
        )
    )
    rows = rows[:limit]
    aliases: dict[int, list[str]] = {}
    for tag_id, name in TagAlias.objects.filter(
        tag_id__in=[r["id"] for r in rows], normalized_name__contains=folded
    ).values_list("tag_id", "name"):
        aliases.setdefault(tag_id, []).append(name)
    parents = dict(
        Tag.objects.filter(id__in={r["parent_id"] for r in rows if r["parent_id"]}).values_list("id", "name")
    )
    for row in rows:
        row["matched_aliases"] = sorted(aliases.get(row["id"], []))
        row["parent_name"] = parents.get(row["parent_id"])
    return _annotate_counts(rows)


def tag_queryset() -> QuerySet[Tag]:
    """Tags as the REST API serializes them (aliases prefetched), by folded name; merged tags included."""
    return Tag.objects.prefetch_related("aliases")


def tags_matching_text(queryset: QuerySet[Tag], text: str) -> QuerySet[Tag]:
    """The REST tag list's ``search``: tags whose name or an alias contains ``text`` (folded as tag names
    are); a text that folds to no valid name matches nothing."""
    try:
        folded = normalize_tag_name(text)
    except TagNameError:
        return queryset.none()
    return queryset.filter(_name_or_alias_contains(folded))


def tag_paths(tag_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each tag's hierarchy path, root first, the tag itself last: one recursive query for all of them."""
    ids = sorted({int(tag_id) for tag_id in tag_ids})
    if not ids:
        return {}
    table = Tag._meta.db_table
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"""
        WITH RECURSIVE up(start_id, parent_id, name, depth) AS (
            SELECT id, parent_id, name, 0 FROM {table} WHERE id IN ({placeholders})
            UNION ALL
            SELECT up.start_id, t.parent_id, t.name, up.depth + 1
            FROM {table} t JOIN up ON t.id = up.parent_id
            WHERE up.depth < %s
        )
        SELECT start_id, name FROM up ORDER BY start_id, depth DESC
    """
    paths: dict[int, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [*ids, MAX_DEPTH])
        for start_id, name in cursor.fetchall():
            paths.setdefault(start_id, []).append(name)
    return paths


def tag_ancestors(tag: Tag) -> list[Tag]:
    """Root first, the tag's parent last."""
    path: list[Tag] = []
    seen = {tag.pk}
    parent_id = tag.parent_id
    while parent_id is not None and parent_id not in seen and len(path) < MAX_DEPTH:
        parent = Tag.objects.only("id", "name", "parent_id").get(pk=parent_id)
        path.append(parent)
        seen.add(parent_id)
        parent_id = parent.parent_id
    return list(reversed(path))


def tag_detail(tag: Tag) -> dict[str, Any]:
    """What the tag page shows: its place in the tree, aliases, usage counts, merged-in tags."""
    return {
        "tag": tag,
        "ancestors": tag_ancestors(tag),
        "aliases": list(tag.aliases.order_by("normalized_name").values("id", "name")),
        "merged_from": list(
            Tag.objects.filter(merged_into=tag).order_by("normalized_name").values("id", "name")
        ),
        "product_count": ProductTag.objects.filter(tag=tag).count(),
        "child_count": Tag.objects.filter(parent=tag, merged_into__isnull=True).count(),
        "suggestion_count": Suggestion.objects.filter(tag=tag).count(),
    }


_AUDIT_NAME_FIELDS = ("final_tags", "accepted", "rejected", "added", "removed")


def _audit_mentions(source: Tag) -> int:
    """Review events that mention the tag by id (``shown``), by name or by an alias (a renamed tag's
    old name is one) — the events a merge rewrites."""
    names = {source.name, *source.aliases.values_list("name", flat=True)}
    if connection.features.supports_json_field_contains:
        mentions = Q(shown__contains=[{"tag_id": source.pk}])
        for name in names:
            for field in _AUDIT_NAME_FIELDS:
                mentions |= Q(**{f"{field}__contains": [name]})
        return ReviewEvent.objects.filter(mentions).count()
    # SQLite (the embedded mode) has no JSON containment: read the audit in Python, a small log there.
    count = 0
    for shown, *lists in ReviewEvent.objects.values_list("shown", *_AUDIT_NAME_FIELDS).iterator(
        chunk_size=2000
    ):
        ids = {row.get("tag_id") for row in shown or [] if isinstance(row, dict)}
        if source.pk in ids or any(
            names.intersection(v for v in values or [] if isinstance(v, str)) for values in lists
        ):
            count += 1
    return count


def tag_merge_preview(*, source: Tag, target: Tag) -> dict[str, Any]:
    """What merging ``source`` into ``target`` moves, for the confirmation page."""
    source_products = ProductTag.objects.filter(tag=source)
    both = source_products.filter(
        Exists(ProductTag.objects.filter(product_id=OuterRef("product_id"), tag=target))
    ).count()
    approved = source_products.count()
    source_suggestions = Suggestion.objects.filter(tag=source)
    suggestion_clash = source_suggestions.filter(
        Exists(
            Suggestion.objects.filter(
                product_id=OuterRef("product_id"), model_version_id=OuterRef("model_version_id"), tag=target
            )
        )
    ).count()
    suggestions = source_suggestions.count()
    events = _audit_mentions(source)
    return {
        "source": source,
        "target": target,
        "target_is_descendant": source.pk in {t.pk for t in tag_ancestors(target)},
        "approved": approved,
        "approved_already_on_target": both,
        "approved_moving": approved - both,
        "suggestions": suggestions,
        "suggestions_clashing": suggestion_clash,
        "aliases": list(source.aliases.order_by("normalized_name").values_list("name", flat=True)),
        "children": list(
            Tag.objects.filter(parent=source, merged_into__isnull=True)
            .order_by("normalized_name")
            .values_list("name", flat=True)[:50]
        ),
        "child_count": Tag.objects.filter(parent=source, merged_into__isnull=True).count(),
        "review_events": events,
    }
