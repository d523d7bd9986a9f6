"""Parsing a catalog file into validated batches, in-process or in a forked parser process that hands
ready-to-COPY batches to the writer."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from annotation.io.readers import (
    FileFormatError,
    ProductRow,
    RowError,
    copy_text,
    encoded_content,
    open_reader,
)

# The product table's data columns in COPY order (the content hash last).
_PRODUCT_COLUMNS = (
    "external_id",
    "title",
    "description",
    "brand",
    "category_path",
    "attributes",
    "lang",
    "image_url",
    "content_hash",
)

# Files at least this large are parsed in a separate process (below it, starting one costs more than
# it saves).
PARALLEL_MIN_BYTES = 4 << 20
# Parsed batches waiting for the writer: bounds the pipeline's memory.
PARALLEL_QUEUE_BATCHES = 3
# Repeated ids are found through the hashes of the ids read so far; past this many the file's later rows
# are no longer checked, which bounds the memory (about 70 bytes an id).
MAX_IDS_CHECKED_FOR_REPEATS = 5_000_000


@dataclass(slots=True)
class ParsedBatch:
    """One batch of validated rows as the parser hands it to the writer.

    ``rows`` for the generic writer; for PostgreSQL the rows arrive already encoded as COPY text lines
    (cheap to pass between processes, nothing left to format in the writer).
    """

    rows_total: int = 0
    rows_rejected: int = 0
    # Rows whose id an earlier row of the file already had (imported: the later row wins).
    rows_duplicate: int = 0
    # Of those, the ones whose earlier row was in this batch: merged into one write (never written twice).
    rows_merged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    bytes_read: int = 0
    rows: list[ProductRow] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    # One COPY text line per row, newline-terminated, in external_ids order: the product table's data
    # columns (_PRODUCT_COLUMNS), the content hash last. One bytes object: cheap to hand between processes.
    copy_payload: bytes = b""
    # (index in the batch, tag names) for rows that carry tags.
    tag_rows: list[tuple[int, list[str]]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.rows) or len(self.external_ids)

    def copy_lines(self) -> list[bytes]:
        """The payload's lines, without their newlines."""
        lines = self.copy_payload.split(b"\n")
        lines.pop()  # after the last newline
        return lines


# --- Parsing (in-process or in the parser process) ----------------------------------------------------


def encode_copy_line(row: ProductRow) -> bytes:
    """The row's data columns (_PRODUCT_COLUMNS order: external id, content, content hash) as a COPY line."""
    content = encoded_content(row)
    return b"%s\t%s\t%s\n" % (
        copy_text(row.external_id).encode(),
        content,
        sha256(content).hexdigest().encode(),
    )


def _finish_batch(
    batch: ParsedBatch, rows: dict[str, ProductRow], encode: bool, read_tags: bool
) -> ParsedBatch:
    if not encode:
        batch.rows = list(rows.values())
        return batch
    batch.external_ids = list(rows)
    batch.copy_payload = b"".join(map(encode_copy_line, rows.values()))
    if read_tags:
        batch.tag_rows = [(index, row.tags) for index, row in enumerate(rows.values()) if row.tags]
    return batch


def parse_batches(
    path: Path,
    file_format: str,
    *,
    batch_size: int,
    max_errors: int,
    encode: bool,
    read_tags: bool = True,
) -> Iterator[ParsedBatch]:
    """Read and validate a catalog file into batches of at most ``batch_size`` distinct ids.

    Keeps at most ``max_errors`` error details over the whole file (every rejected row is counted), and
    as many warnings. A repeated id is counted and warned about (naming both lines when they are in one
    batch); the later row wins, as a later import would.
    """
    errors_kept = warnings_kept = 0
    seen_ids: set[int] = set()  # hashes: a collision (1 in 2**64) only costs a needless warning
    with path.open("rb") as stream:
        reader = open_reader(file_format, stream, read_tags=read_tags)
        batch = ParsedBatch()
        rows: dict[str, ProductRow] = {}
        for result in reader.rows():
            batch.rows_total += 1
            if type(result) is list:
                batch.rows_rejected += 1
                kept = result[: max(0, max_errors - errors_kept)]
                batch.errors.extend(kept)
                errors_kept += len(kept)
                continue
            id_hash = hash(result.external_id)
            if id_hash in seen_ids:
                batch.rows_duplicate += 1
                earlier = rows.get(result.external_id)
                batch.rows_merged += earlier is not None
                if warnings_kept < max_errors:
                    where = f"line {earlier.line}" if earlier is not None else "an earlier line"
                    batch.warnings.append(
                        RowError(
                            result.line,
                            "id",
                            f"repeats the id {result.external_id!r} of {where}; this later row is imported",
                            warning=True,
                        )
                    )
                    warnings_kept += 1
            elif len(seen_ids) < MAX_IDS_CHECKED_FOR_REPEATS:
                seen_ids.add(id_hash)
            # A repeated id: the later row wins (and moves to the end, so it is written after).
            rows.pop(result.external_id, None)
            rows[result.external_id] = result
            if len(rows) >= batch_size:
                batch.bytes_read = stream.tell()
                yield _finish_batch(batch, rows, encode, read_tags)
                batch, rows = ParsedBatch(), {}
        batch.bytes_read = stream.tell()
        if rows or batch.rows_total:
            yield _finish_batch(batch, rows, encode, read_tags)


@dataclass(frozen=True, slots=True)
class _ParserFailure:
    format_error: bool
    message: str


def _parser_process_main(out: multiprocessing.Queue, path: Path, file_format: str, options: dict) -> None:
    try:
        for batch in parse_batches(path, file_format, encode=True, **options):
            out.put(batch)
        out.put(None)
    except FileFormatError as exc:
        out.put(_ParserFailure(True, str(exc)))
    except BaseException as exc:  # reported to the writer, which raises it in the importing process
        out.put(_ParserFailure(False, "".join(traceback.format_exception(exc))))


def _can_fork_parser() -> bool:
    # A daemonic process (a Celery prefork worker) may not have children; fork keeps Django set up.
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def parse_batches_in_subprocess(path: Path, file_format: str, **options) -> Iterator[ParsedBatch]:
    """``parse_batches`` run in a forked process, at most PARALLEL_QUEUE_BATCHES batches ahead.

    The child only reads the file and never touches the database connection it inherits.
    """
    context = multiprocessing.get_context("fork")
    batches: multiprocessing.Queue = context.Queue(maxsize=PARALLEL_QUEUE_BATCHES)
    process = context.Process(
        target=_parser_process_main,
        args=(batches, path, file_format, options),
        name="tagstudio-import-parser",
        daemon=True,
    )
    process.start()
    try:
        while True:
            try:
                item = batches.get(timeout=1.0)
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        f"the import parser process died (exit code {process.exitcode})"
                    ) from None
                continue
            if item is None:
                break
            if isinstance(item, _ParserFailure):
                if item.format_error:
                    raise FileFormatError(item.message)
                raise RuntimeError(f"the import parser process failed:\n{item.message}")
            yield item
        process.join()
    finally:
        if process.is_alive():
            process.terminate()
            process.join()
        batches.close()
