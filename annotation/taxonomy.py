"""Tag names: one folding rule for every entry point (import, review, API, taxonomy files).

"T-Shirt", "t shirt", "Ｔ－ＳＨＩＲＴ" and "  t_shirt " all fold to "t shirt", so they can never become
separate tags; an alias folds the same way and resolves to its canonical tag.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from annotation.models import Tag, TagAlias

TAG_NAME_MAX_LENGTH = 200
_SEPARATORS = re.compile(r"[\s\-_‐‑‒–—]+")


# pg_advisory_xact_lock key for structural taxonomy changes (parent moves, merges, vocabulary imports):
# they run one at a time, so two concurrent changes cannot build a cycle each check alone would refuse.
TAXONOMY_LOCK_KEY = 7_310_001


def lock_taxonomy() -> None:
    """Take the taxonomy lock until the end of the current transaction (PostgreSQL; a no-op elsewhere)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [TAXONOMY_LOCK_KEY])


class TagNameError(ValueError):
    """A tag name that cannot be stored (empty, too long, control characters)."""


def clean_tag_display_name(name: str) -> str:
    """The name as shown: NFKC, trimmed, inner whitespace collapsed; case kept."""
    if not isinstance(name, str):
        raise TagNameError(f"tag name must be a string, got {type(name).__name__}")
    return _clean_tag_display_name(name)


def normalize_tag_name(name: str) -> str:
    """The folding key: NFKC, case-folded, hyphens/underscores/whitespace runs as one space."""
    if not isinstance(name, str):
        raise TagNameError(f"tag name must be a string, got {type(name).__name__}")
    return _normalize_tag_name(name)


# Cached: an import of a million products repeats a few thousand tag names; folding each occurrence
# again (NFKC + regex) was most of the import's time. Errors are not cached (they are raised).
@functools.lru_cache(maxsize=1 << 16)
def _clean_tag_display_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    if any(unicodedata.category(ch) == "Cc" for ch in text.replace("\t", " ")):
        raise TagNameError(f"tag name {name!r} contains control characters")
    text = " ".join(text.split())
    if not text:
        raise TagNameError("tag name is empty")
    if len(text) > TAG_NAME_MAX_LENGTH:
        raise TagNameError(f"tag name is longer than {TAG_NAME_MAX_LENGTH} characters")
    return text


@functools.lru_cache(maxsize=1 << 16)
def _normalize_tag_name(name: str) -> str:
    text = _clean_tag_display_name(name).casefold()
    text = _SEPARATORS.sub(" ", text).strip()
    if not text:
        raise TagNameError(f"tag name {name!r} has no letters or digits")
    return text


class TagResolver:
    """Maps tag names to canonical tag ids, creating unknown tags on request.

    Loads the whole vocabulary (tags and aliases) once: tens of thousands of rows fit easily, and an
    import of a million products then resolves names without a query per row.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        for tag_id, key, merged_into in Tag.objects.values_list("id", "normalized_name", "merged_into_id"):
            self._ids[key] = merged_into or tag_id
        for key, tag_id in TagAlias.objects.values_list("normalized_name", "tag_id"):
            self._ids[key] = tag_id
        # A merged tag resolves to where it went (one hop is enough: merge targets are canonical).

    def lookup(self, name: str) -> int | None:
        return self._ids.get(normalize_tag_name(name))

    def _reload(self, keys: list[str]) -> None:
        """Re-read these folding keys: another request may have added them as tags or aliases since."""
        for tag_id, key, merged_into in Tag.objects.filter(normalized_name__in=keys).values_list(
            "id", "normalized_name", "merged_into_id"
        ):
            self._ids[key] = merged_into or tag_id
        for key, tag_id in TagAlias.objects.filter(normalized_name__in=keys).values_list(
            "normalized_name", "tag_id"
        ):
            self._ids[key] = tag_id

    def resolve(self, names: Iterable[str], *, create: bool) -> tuple[dict[str, int], list[str]]:
        """Return ({name: tag_id}, unknown names). With ``create``, unknown names become new tags."""
        names = list(names)  # read twice below: a generator must not come back empty the second time
        found: dict[str, int] = {}
        missing: dict[str, str] = {}
        for name in names:
            key = normalize_tag_name(name)
            tag_id = self._ids.get(key)
            if tag_id is None:
                missing.setdefault(key, name)
            else:
                found[name] = tag_id
        if missing and create:
            # A name that became an alias since the vocabulary was loaded must resolve to its tag, not
            # become a tag of its own ("no tag and alias fold to the same key").
            self._reload(list(missing))
            now = timezone.now()
            Tag.objects.bulk_create(
                [
                    Tag(
                        name=clean_tag_display_name(name), normalized_name=key, created_at=now, updated_at=now
                    )
                    for key, name in missing.items()
                    if key not in self._ids
                ],
                ignore_conflicts=True,  # a concurrent import may have created the same tag
            )
            self._reload([key for key in missing if key not in self._ids])
            found.update({name: self._ids[normalize_tag_name(name)] for name in names if name not in found})
            return found, []
        unknown = [name for name in names if name not in found]
        return found, unknown
