"""Tag vocabulary import: names, parents and aliases from CSV or JSONL, all-or-nothing, idempotent.

File shapes (one tag per record):
- CSV with a header row: ``name`` (required), ``parent``, ``aliases`` (separated by ``|``),
  ``description``;
- JSONL: ``{"name": ..., "parent": ... | null, "aliases": [...] | "a|b", "description": ...}``.

Rules:
- Names fold with ``annotation.taxonomy.names.normalize_tag_name``: a listed name that folds onto an
  existing tag updates that tag (its display name, parent, description) rather than creating another.
- A parent may be listed after its children, or be an existing tag named as annotation.taxonomy.resolver
  reads names (an alias, a merged tag's name: the tag it stands for). The listed tags
  are authoritative for their own parent: an empty parent makes a root. The hierarchy must stay a forest:
  a cycle is an error.
- A name is taken once: no two tags, no tag and alias, no two aliases fold to the same key. Aliases are
  added, never removed (older files and imports may still use them).
- Every problem is reported with its line and field, and a file with any problem writes nothing.
- Loading the same file twice changes nothing. A tag whose name or parent changes stamps the products
  carrying it or a tag below it (``tags_updated_at``): their exported tag paths changed.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from annotation.io.readers import FileFormatError, RowError, json_type_name, looks_binary
from annotation.models import Product, ProductTag, Tag, TagAlias
from annotation.taxonomy.locks import lock_taxonomy
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name
from annotation.taxonomy.resolver import TagResolver

ALIAS_SEPARATOR = "|"
MAX_DESCRIPTION_LENGTH = 5000
MAX_DEPTH = 64
_SNIFF_BYTES = 64 * 1024


@dataclass(slots=True)
class TaxonomyEntry:
    line: int
    name: str
    key: str
    parent: str | None = None  # display form, as written
    parent_key: str | None = None
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (display, key)
    description: str | None = None  # None: the file says nothing (the tag keeps its description)


@dataclass(slots=True)
class TaxonomyImportResult:
    entries: int = 0
    tags_created: int = 0
    tags_updated: int = 0
    tags_unchanged: int = 0
    aliases_created: int = 0
    products_stamped: int = 0
    errors: list[RowError] = field(default_factory=list)


# --- Reading ------------------------------------------------------------------------------------------


def _name(value: Any, line: int, field_name: str, errors: list[RowError]) -> tuple[str, str] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        errors.append(RowError(line, field_name, f"must be a string, got {json_type_name(value)}"))
        return None
    try:
        return clean_tag_display_name(value), normalize_tag_name(value)
    except TagNameError as exc:
        errors.append(RowError(line, field_name, str(exc)))
        return None


def _entry(record: Any, line: int, errors: list[RowError]) -> TaxonomyEntry | None:
    if not isinstance(record, dict):
        errors.append(RowError(line, "(row)", f"must be a JSON object, got {json_type_name(record)}"))
        return None
    before = len(errors)
    name = _name(record.get("name"), line, "name", errors)
    if name is None and len(errors) == before:
        errors.append(RowError(line, "name", "is required"))
    parent = _name(record.get("parent"), line, "parent", errors)
    raw_aliases = record.get("aliases")
    if isinstance(raw_aliases, str):
        raw_aliases = raw_aliases.split(ALIAS_SEPARATOR)
    aliases: list[tuple[str, str]] = []
    if raw_aliases is not None and not isinstance(raw_aliases, list):
        errors.append(
            RowError(
                line,
                "aliases",
                f"must be an array or a '|'-separated string, got {json_type_name(raw_aliases)}",
            )
        )
    else:
        for item in raw_aliases or []:
            alias = _name(item, line, "aliases", errors)
            if alias is not None and all(alias[1] != key for _, key in aliases):
                aliases.append(alias)
    description = record.get("description")
    if description is not None:
        if not isinstance(description, str):
            errors.append(
                RowError(line, "description", f"must be a string, got {json_type_name(description)}")
            )
        elif len(description.strip()) > MAX_DESCRIPTION_LENGTH:
            errors.append(
                RowError(line, "description", f"is longer than {MAX_DESCRIPTION_LENGTH} characters")
            )
        description = description.strip() if isinstance(description, str) else None
    if len(errors) > before or name is None:
        return None
    if parent is not None and parent[1] == name[1]:
        errors.append(RowError(line, "parent", "a tag cannot be its own parent"))
        return None
    return TaxonomyEntry(
        line=line,
        name=name[0],
        key=name[1],
        parent=parent[0] if parent else None,
        parent_key=parent[1] if parent else None,
        aliases=[alias for alias in aliases if alias[1] != name[1]],
        description=description or None,
    )


def _jsonl_records(stream) -> Iterator[tuple[int, Any, RowError | None]]:
    for line_no, raw_line in enumerate(stream, start=1):
        if line_no == 1:
            raw_line = raw_line.removeprefix(codecs.BOM_UTF8)
        if not raw_line.strip():
            continue
        try:
            yield line_no, orjson.loads(raw_line), None
        except orjson.JSONDecodeError as exc:
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as decode_error:
                yield (
                    line_no,
                    None,
                    RowError(line_no, "(line)", f"invalid UTF-8 at byte {decode_error.start + 1}"),
                )
                continue
            yield (
                line_no,
                None,
                RowError(line_no, "(line)", f"malformed JSON: {exc.msg} (column {exc.colno})"),
            )


def _csv_records(stream) -> Iterator[tuple[int, Any, RowError | None]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise FileFormatError("the CSV file is empty (no header row)") from None
    if "name" not in header:
        raise FileFormatError(
            f"the CSV header row lacks the column name (first row read as header: {', '.join(header)[:200]}); "
            "expected name, parent, aliases"
        )
    while True:
        line_no = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line_no, None, RowError(line_no, "(line)", f"malformed CSV: {exc}")
            continue
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            yield (
                line_no,
                None,
                RowError(line_no, "(row)", f"has {len(values)} columns, the header has {len(header)}"),
            )
            continue
        try:
            "".join(values).encode("utf-8")
        except UnicodeEncodeError:
            yield line_no, None, RowError(line_no, "(line)", "invalid UTF-8")
            continue
        yield line_no, dict(zip(header, values)), None


def detect_taxonomy_format(path: Path) -> str:
    """'csv' or 'jsonl'; refuses an empty, binary or unrecognisable file before anything is read."""
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
    if not head.strip():
        raise FileFormatError(f"{path.name} is empty")
    if looks_binary(head):
        raise FileFormatError(f"{path.name} is a binary file, not a CSV or JSONL tag vocabulary")
    first = head.lstrip(codecs.BOM_UTF8 + b" \t\r\n")
    if first.startswith(b"{"):
        return "jsonl"
    if first.startswith(b"["):
        raise FileFormatError(f"{path.name} is a JSON array, not JSONL: write one JSON object per line")
    return "csv"


def read_taxonomy(path: Path | str) -> tuple[list[TaxonomyEntry], list[RowError]]:
    """Parse and check each record on its own (names, types); cross-record rules come in plan_taxonomy."""
    path = Path(path)
    file_format = detect_taxonomy_format(path)
    entries: list[TaxonomyEntry] = []
    errors: list[RowError] = []
    with path.open("rb") as stream:
        records = _jsonl_records(stream) if file_format == "jsonl" else _csv_records(stream)
        for line_no, record, error in records:
            if error is not None:
                errors.append(error)
                continue
            entry = _entry(record, line_no, errors)
            if entry is not None:
                entries.append(entry)
    return entries, errors


# --- Checking against the file and the database -------------------------------------------------------


def _check(entries: list[TaxonomyEntry], errors: list[RowError]) -> dict[str, Tag]:
    """Cross-record and database rules; returns the existing tags by key. Appends to ``errors``."""
    by_key: dict[str, TaxonomyEntry] = {}
    for entry in entries:
        first = by_key.get(entry.key)
        if first is not None:
            errors.append(
                RowError(entry.line, "name", f"{entry.name!r} repeats the tag of line {first.line}")
            )
            continue
        by_key[entry.key] = entry
    tags = {tag.normalized_name: tag for tag in Tag.objects.all()}
    aliases = {alias.normalized_name: alias for alias in TagAlias.objects.select_related("tag")}

    alias_owner: dict[str, TaxonomyEntry] = {}
    for entry in by_key.values():
        existing_alias = aliases.get(entry.key)
        if existing_alias is not None:
            errors.append(
                RowError(
                    entry.line,
                    "name",
                    f"{entry.name!r} is already an alias of tag {existing_alias.tag.name!r}",
                )
            )
        tag = tags.get(entry.key)
        if tag is not None and tag.merged_into_id is not None:
            errors.append(
                RowError(entry.line, "name", f"tag {tag.name!r} was merged into another tag; list that one")
            )
        for display, key in entry.aliases:
            if key in by_key or (key in tags and key != entry.key):
                errors.append(
                    RowError(entry.line, "aliases", f"{display!r} is a tag name, it cannot be an alias")
                )
            elif key in aliases and aliases[key].tag.normalized_name != entry.key:
                errors.append(
                    RowError(
                        entry.line,
                        "aliases",
                        f"{display!r} is already an alias of tag {aliases[key].tag.name!r}",
                    )
                )
            elif key in alias_owner and alias_owner[key] is not entry:
                errors.append(
                    RowError(
                        entry.line, "aliases", f"{display!r} is also an alias on line {alias_owner[key].line}"
                    )
                )
            else:
                alias_owner[key] = entry

    # Parents: listed in the file, or an existing tag as the resolver reads names (an alias is its tag, a
    # merged tag's name the tag it was merged into, a deactivated tag itself).
    parent_of: dict[str, str | None] = {}
    resolver = TagResolver()
    keys_by_id = {tag.pk: key for key, tag in tags.items()}
    for entry in by_key.values():
        if entry.parent_key is None:
            parent_of[entry.key] = None
            continue
        parent_key = entry.parent_key
        if parent_key not in by_key:
            existing = resolver.tag(entry.parent or parent_key)
            if existing is None or existing.id not in keys_by_id:
                errors.append(
                    RowError(
                        entry.line,
                        "parent",
                        f"{entry.parent!r} is neither a tag in this file nor an existing tag",
                    )
                )
            else:
                parent_key = entry.parent_key = keys_by_id[existing.id]
        parent_of[entry.key] = parent_key

    # The hierarchy after the import: the file's parents for its tags, the database's for the others.
    by_id = {tag.pk: tag for tag in tags.values()}

    def parent_key_of(key: str) -> str | None:
        if key in parent_of:
            return parent_of[key]
        parent_id = tags[key].parent_id if key in tags else None
        return by_id[parent_id].normalized_name if parent_id in by_id else None

    for entry in by_key.values():
        seen = {entry.key}
        key = parent_key_of(entry.key)
        depth = 0
        while key is not None and depth < MAX_DEPTH:
            if key in seen:
                errors.append(
                    RowError(
                        entry.line,
                        "parent",
                        f"{entry.parent!r} is below {entry.name!r}: the hierarchy would have a cycle",
                    )
                )
                break
            seen.add(key)
            key = parent_key_of(key)
            depth += 1
    return tags


# --- Writing ------------------------------------------------------------------------------------------


def _subtree_ids(tag_ids: set[int]) -> set[int]:
    ids, frontier = set(tag_ids), set(tag_ids)
    while frontier:
        frontier = set(Tag.objects.filter(parent_id__in=frontier).values_list("id", flat=True)) - ids
        ids |= frontier
    return ids


def import_taxonomy(path: Path | str) -> TaxonomyImportResult:
    """Load a tag vocabulary. Raises FileFormatError for a file that is not CSV/JSONL at all; any row
    problem is returned in ``errors`` and then nothing is written."""
    entries, errors = read_taxonomy(path)
    result = TaxonomyImportResult(entries=len(entries))
    with transaction.atomic():
        lock_taxonomy()  # structural changes run one at a time (no cycle from two concurrent moves)
        tags = _check(entries, errors)
        if errors:
            result.errors = sorted(errors, key=lambda error: error.line)
            return result
        now = timezone.now()
        new_tags = [
            Tag(
                name=entry.name,
                normalized_name=entry.key,
                description=entry.description or "",
                created_at=now,
                updated_at=now,
            )
            for entry in entries
            if entry.key not in tags
        ]
        Tag.objects.bulk_create(new_tags)
        result.tags_created = len(new_tags)
        created_keys = {tag.normalized_name for tag in new_tags}
        ids = dict(
            Tag.objects.filter(normalized_name__in=[entry.key for entry in entries]).values_list(
                "normalized_name", "id"
            )
        )
        ids.update({key: tag.pk for key, tag in tags.items()})

        changed: list[Tag] = []
        new_with_parent: list[Tag] = []
        moved_or_renamed: set[int] = set()
        for entry in entries:
            parent_id = ids[entry.parent_key] if entry.parent_key else None
            if entry.key in created_keys:
                # Parents go in once every new tag has an id (a parent may come after its children).
                if parent_id is not None:
                    new_with_parent.append(Tag(pk=ids[entry.key], parent_id=parent_id))
                continue
            tag = tags[entry.key]
            before = (tag.name, tag.parent_id, tag.description)
            tag.name = entry.name
            tag.parent_id = parent_id
            if entry.description is not None:
                tag.description = entry.description
            if (tag.name, tag.parent_id, tag.description) == before:
                result.tags_unchanged += 1
                continue
            if (tag.name, tag.parent_id) != before[:2]:
                moved_or_renamed.add(tag.pk)
            tag.updated_at = now
            changed.append(tag)
            result.tags_updated += 1
        Tag.objects.bulk_update(new_with_parent, ["parent"], batch_size=1000)
        Tag.objects.bulk_update(changed, ["name", "parent", "description", "updated_at"], batch_size=1000)

        existing_alias_keys = set(
            TagAlias.objects.filter(
                normalized_name__in=[key for entry in entries for _, key in entry.aliases]
            ).values_list("normalized_name", flat=True)
        )
        new_aliases = [
            TagAlias(tag_id=ids[entry.key], name=display, normalized_name=key, created_at=now)
            for entry in entries
            for display, key in entry.aliases
            if key not in existing_alias_keys
        ]
        TagAlias.objects.bulk_create(new_aliases)
        result.aliases_created = len(new_aliases)

        if moved_or_renamed:
            carriers = ProductTag.objects.filter(tag_id__in=_subtree_ids(moved_or_renamed)).values(
                "product_id"
            )
            result.products_stamped = Product.objects.filter(id__in=Subquery(carriers)).update(
                tags_updated_at=now
            )
    return result
