"""Reading and writing product records (JSONL, the schema of ``shared/data/*/dev.jsonl``).

Every malformed line raises :class:`RecordError` naming the line, the field and the reason, so a bad
import file is reported precisely instead of failing somewhere deep in training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlcore.types import ProductRecord

__all__ = ["RecordError", "read_jsonl", "record_from_dict", "record_to_dict", "write_jsonl"]


class RecordError(ValueError):
    """A record that does not follow the schema; ``line`` is 1-based (None when not from a file)."""

    def __init__(self, reason: str, *, line: int | None = None, field: str | None = None) -> None:
        self.line = line
        self.field = field
        self.reason = reason
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


def _optional_str(d: Mapping[str, Any], key: str, line: int | None) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"expected a string or null, got {type(value).__name__}", line=line, field=key)
    return value


def _str_list(d: Mapping[str, Any], key: str, line: int | None) -> tuple[str, ...] | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(
            f"expected a list of strings or null, got {type(value).__name__}", line=line, field=key
        )
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RecordError(
                f"item {i} is {type(item).__name__}, expected a string", line=line, field=f"{key}[{i}]"
            )
        item = item.strip()
        if item and item not in out:  # tags are a set; keep first-seen order (root -> leaf, then attributes)
            out.append(item)
    return tuple(out)


def record_from_dict(d: Mapping[str, Any], line: int | None = None) -> ProductRecord:
    """Validate one decoded JSON object and turn it into a :class:`ProductRecord`.

    Required: non-empty string ``id`` (a number is accepted and turned into a string) and non-empty
    ``title``. Optional: ``description`` (str), ``brand`` (str|null), ``category_path`` (list[str]|null),
    ``attributes`` (object|null), ``lang`` (str|null), ``tags`` (list[str]). Unknown keys are ignored.
    """
    if not isinstance(d, Mapping):
        raise RecordError(f"expected a JSON object, got {type(d).__name__}", line=line)
    raw_id = d.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise RecordError("missing or not a string", line=line, field="id")
    record_id = str(raw_id).strip()
    if not record_id:
        raise RecordError("empty", line=line, field="id")
    title = d.get("title")
    if not isinstance(title, str):
        raise RecordError("missing or not a string", line=line, field="title")
    if not title.strip():
        raise RecordError("empty", line=line, field="title")
    description = d.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str):
        raise RecordError(
            f"expected a string, got {type(description).__name__}", line=line, field="description"
        )
    attributes = d.get("attributes")
    if attributes is not None and not isinstance(attributes, Mapping):
        raise RecordError(
            f"expected an object or null, got {type(attributes).__name__}", line=line, field="attributes"
        )
    tags = _str_list(d, "tags", line)
    return ProductRecord(
        id=record_id,
        title=title,
        description=description,
        brand=_optional_str(d, "brand", line),
        category_path=_str_list(d, "category_path", line),
        attributes=dict(attributes) if attributes is not None else None,
        lang=_optional_str(d, "lang", line),
        tags=tags or (),
    )


def record_to_dict(record: ProductRecord) -> dict[str, Any]:
    """The JSONL form of a record (inverse of :func:`record_from_dict`)."""
    d: dict[str, Any] = {
        "id": record.id,
        "title": record.title,
        "description": record.description,
        "brand": record.brand,
        "category_path": list(record.category_path) if record.category_path is not None else None,
        "tags": list(record.tags),
        "lang": record.lang,
    }
    if record.attributes is not None:
        d["attributes"] = record.attributes
    return d


def read_jsonl(path: str | Path) -> Iterator[ProductRecord]:
    """Stream records from a JSONL file; blank lines are skipped.

    Raises :class:`RecordError` for invalid UTF-8, malformed JSON or a record that breaks the schema,
    and for an id seen twice in the same file.
    """
    seen: set[str] = set()
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecordError(f"invalid UTF-8 at byte {exc.start}", line=line_no) from exc
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RecordError(f"malformed JSON ({exc.msg} at column {exc.colno})", line=line_no) from exc
            record = record_from_dict(obj, line=line_no)
            if record.id in seen:
                raise RecordError(f"duplicate id {record.id!r}", line=line_no, field="id")
            seen.add(record.id)
            yield record


def write_jsonl(path: str | Path, rows: Iterable[ProductRecord | Mapping[str, Any]]) -> int:
    """Write records (or plain dicts) as UTF-8 JSONL, atomically (temp file + rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                d = record_to_dict(row) if isinstance(row, ProductRecord) else row
                fh.write(json.dumps(d, ensure_ascii=False))
                fh.write("\n")
                count += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count
