"""Tag names -> canonical tags."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from annotation.models import Tag, TagAlias
from annotation.taxonomy.names import clean_tag_display_name, normalize_tag_name


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
