"""The one tag resolver: what a tag name means, for every entry point.

Review submit, the product list (HTML page and API filter), catalog import, export, the taxonomy pages
and the tag pickers all resolve names here, under one rule set:

1. **Folding.** A name is folded with ``names.normalize_tag_name`` ("T-Shirt", "t_shirt" and "Ｔ－ＳＨＩＲＴ"
   are one name) and matched against tag names and aliases. A name that cannot be a tag (empty, control
   characters, too long) resolves to nothing and is reported as invalid.
2. **Aliases.** An alias resolves to its tag (a renamed tag's old name is one).
3. **Merged tags.** A merged tag's name resolves to the tag it was merged into (merge targets are
   canonical: one hop; the merge also keeps the old name as an alias of the target). Nothing ever
   resolves to a merged tombstone.
4. **Inactive tags.** A deactivated tag still resolves for reads: the product list (HTML and API) filters
   by it and shows the products that still carry it, the taxonomy pages find it (and the tag services then
   say what they refuse to do with it), the export lists it among the deleted tags. It cannot be *newly
   applied*: review submit refuses it (a product that already carries it may keep it: keeping is not
   applying) and an import skips it; neither creates a second tag under its name.
5. **Unknown names.** Reads find nothing (the HTML list shows an empty page that says the tag is unknown,
   the API answers 400). Applying with ``create`` makes a new tag: an import always, a review only for
   admins.

``TagResolver`` reads the vocabulary once (``preload=True``: tens of thousands of tags and aliases fit
easily, and an import of a million products then resolves names without a query per row) or only the
names it is asked about (``preload=False``: one request resolving a handful of names).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from django.utils import timezone

from annotation.models import Tag, TagAlias
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name

_MAX_MERGE_HOPS = 8  # merge targets are canonical (one hop); the bound guards against data written by hand


@dataclass(frozen=True, slots=True)
class ResolvedTag:
    """The canonical tag a name resolves to."""

    id: int
    name: str
    is_active: bool


@dataclass(slots=True)
class TagResolution:
    """Names resolved to be applied to products (rule 4: inactive tags only where ``keep`` allows them)."""

    tags: dict[str, int] = field(default_factory=dict)  # submitted name -> canonical tag id
    unknown: list[str] = field(default_factory=list)  # names of no tag (after ``create``: none)
    inactive: list[str] = field(default_factory=list)  # names of deactivated tags (not kept)
    invalid: list[str] = field(default_factory=list)  # names that cannot be tag names
    created: list[str] = field(default_factory=list)  # names that became new tags

    @property
    def refused(self) -> bool:
        return bool(self.unknown or self.inactive or self.invalid)


@dataclass(frozen=True, slots=True)
class _TagRow:
    name: str
    is_active: bool
    merged_into_id: int | None


class TagResolver:
    """Maps tag names to canonical tags under the module's rules, creating unknown tags on request."""

    def __init__(self, *, preload: bool = True) -> None:
        self._rows: dict[int, _TagRow] = {}
        self._keys: dict[str, int] = {}  # folding key -> the tag (or alias target) it names, before merges
        self._complete = preload  # every tag and alias is loaded: a key not in _keys names no tag
        self._absent: set[str] = set()  # keys looked up (lazy mode) that named no tag
        if preload:
            self._load(None)

    # --- loading ---------------------------------------------------------------------------------------

    def _load(self, keys: list[str] | None) -> None:
        """Read the tags and aliases with these folding keys (None: all of them) and the tags they point at.

        Read again when asked: another request may have added them as tags or aliases since.
        """
        tags = Tag.objects.all() if keys is None else Tag.objects.filter(normalized_name__in=keys)
        for tag_id, key, name, active, merged_into in tags.values_list(
            "id", "normalized_name", "name", "is_active", "merged_into_id"
        ):
            self._rows[tag_id] = _TagRow(name, active, merged_into)
            self._keys[key] = tag_id
        aliases = (
            TagAlias.objects.all() if keys is None else TagAlias.objects.filter(normalized_name__in=keys)
        )
        for key, tag_id in aliases.values_list("normalized_name", "tag_id"):
            self._keys.setdefault(key, tag_id)  # a merged tombstone's name is also an alias of the target
        if keys is not None:
            for key in keys:
                if key in self._keys:
                    self._absent.discard(key)
                else:
                    self._absent.add(key)
            self._load_rows(self._keys[key] for key in keys if key in self._keys)

    def _load_rows(self, tag_ids: Iterable[int]) -> None:
        """Rows for these tags and, hop by hop, the tags they were merged into (lazy mode only)."""
        frontier = set(tag_ids)
        for _ in range(_MAX_MERGE_HOPS):
            missing = {tag_id for tag_id in frontier if tag_id not in self._rows}
            if missing:
                for tag_id, name, active, merged_into in Tag.objects.filter(id__in=missing).values_list(
                    "id", "name", "is_active", "merged_into_id"
                ):
                    self._rows[tag_id] = _TagRow(name, active, merged_into)
            frontier = {
                row.merged_into_id
                for tag_id in frontier
                if (row := self._rows.get(tag_id)) is not None and row.merged_into_id is not None
            }
            if not frontier:
                return

    def _ensure(self, keys: Iterable[str]) -> None:
        if self._complete:
            return
        unseen = [key for key in dict.fromkeys(keys) if key not in self._keys and key not in self._absent]
        if unseen:
            self._load(unseen)

    # --- rules -----------------------------------------------------------------------------------------

    def _canonical(self, key: str) -> ResolvedTag | None:
        """Rules 2 and 3: the tag a folding key names, merges followed."""
        tag_id = self._keys.get(key)
        return None if tag_id is None else self._follow(tag_id)

    def _follow(self, tag_id: int) -> ResolvedTag | None:
        row = self._rows.get(tag_id)
        for _ in range(_MAX_MERGE_HOPS):
            if row is None or row.merged_into_id is None:
                break
            tag_id, row = row.merged_into_id, self._rows.get(row.merged_into_id)
        if row is None or row.merged_into_id is not None:
            return None  # a dangling or cyclic merge written behind the services' back
        return ResolvedTag(id=tag_id, name=row.name, is_active=row.is_active)

    @staticmethod
    def _key(name: str) -> str | None:
        try:
            return normalize_tag_name(name)
        except TagNameError:
            return None

    # --- reads (rule 4: inactive tags resolve) -------------------------------------------------------------

    def tag(self, name: str) -> ResolvedTag | None:
        """The canonical tag a name means, active or not; None for an unknown or invalid name."""
        key = self._key(name)
        if key is None:
            return None
        self._ensure([key])
        return self._canonical(key)

    def lookup(self, name: str) -> int | None:
        """The canonical tag id a name means (see ``tag``)."""
        tag = self.tag(name)
        return tag.id if tag is not None else None

    def canonical(self, tag_ids: Iterable[int]) -> dict[int, ResolvedTag]:
        """The tag each stored tag id stands for now: itself, or the tag it was merged into (rule 3)."""
        tag_ids = list(tag_ids)
        if not self._complete:
            self._load_rows(tag_ids)
        return {tag_id: tag for tag_id in tag_ids if (tag := self._follow(tag_id)) is not None}

    def resolve(self, names: Iterable[str], *, create: bool) -> tuple[dict[str, int], list[str]]:
        """Return ({name: canonical tag id}, unknown names), inactive tags included (a read).

        With ``create``, unknown names become new tags. A name that cannot be a tag raises TagNameError.
        """
        names = list(names)  # read twice below: a generator must not come back empty the second time
        keys = {name: normalize_tag_name(name) for name in names}
        self._ensure(keys.values())
        found: dict[str, int] = {}
        missing: dict[str, str] = {}
        for name, key in keys.items():
            tag = self._canonical(key)
            if tag is None:
                missing.setdefault(key, name)
            else:
                found[name] = tag.id
        if missing and create:
            self._create(missing)
            found.update({name: self._canonical(keys[name]).id for name in names if name not in found})
            return found, []
        return found, [name for name in names if name not in found]

    # --- applying to products (rule 4: inactive tags refused unless kept; rule 5: create) -----------------

    def resolve_to_apply(
        self, names: Iterable[str], *, create: bool, keep: Collection[int] = ()
    ) -> TagResolution:
        """Resolve names that are about to be applied to products.

        A deactivated tag is refused unless its id is in ``keep`` (the product carries it already). With
        ``create``, unknown names become new tags. Each list keeps the first spelling of each name, in
        submission order.
        """
        result = TagResolution()
        keys: dict[str, str] = {}  # folding key -> first submitted spelling
        spellings: dict[str, str] = {}  # submitted name -> folding key
        for name in names:
            key = self._key(name)
            if key is None:
                if name not in result.invalid:
                    result.invalid.append(name)
                continue
            keys.setdefault(key, name)
            spellings[name] = key
        self._ensure(keys)
        missing: dict[str, str] = {}
        refused: set[str] = set()
        for key, name in keys.items():
            tag = self._canonical(key)
            if tag is None:
                missing[key] = name
            elif not tag.is_active and tag.id not in keep:
                result.inactive.append(name)
                refused.add(key)
        if missing and create:
            self._create(missing)
            result.created = list(missing.values())
        elif missing:
            result.unknown = list(missing.values())
            refused.update(missing)
        result.tags = {name: self._canonical(key).id for name, key in spellings.items() if key not in refused}
        return result

    def _create(self, missing: dict[str, str]) -> None:
        """New tags for these folding keys ({key: first spelling}); a concurrent creator's tag is used."""
        # A name that became a tag or an alias since the vocabulary was loaded must resolve to it, not
        # become a tag of its own ("no tag and alias fold to the same key").
        self._load(list(missing))
        now = timezone.now()
        Tag.objects.bulk_create(
            [
                Tag(name=clean_tag_display_name(name), normalized_name=key, created_at=now, updated_at=now)
                for key, name in missing.items()
                if self._canonical(key) is None
            ],
            ignore_conflicts=True,  # a concurrent import or review may have created the same tag
        )
        self._load([key for key in missing if self._canonical(key) is None])


def tag_resolve(name: str) -> ResolvedTag | None:
    """One name, read (inactive tags included): a resolver that reads only this name's rows."""
    return TagResolver(preload=False).tag(name)
