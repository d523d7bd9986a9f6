"""Catalog import speed and memory: 1,000,000 products against a raw PostgreSQL COPY of the same rows.

1. Builds a JSONL catalog of ``--rows`` products (default 1,000,000) from every ``<data-dir>/*/dev.jsonl``
   (English and Chinese sets interleaved in a seeded random order, repeated with varied ids: the n-th
   repetition of product ``X`` is ``X~n``; ``--tag-share`` of the rows keep their tags, the rest carry
   none, as a merchant's partly tagged catalog). Next to it, the same rows validated and encoded as
   PostgreSQL COPY text with the product table's data columns (the raw COPY's input; not timed).
2. Creates a throwaway database (``tagstudio_bench_import``), migrates it.
3. Raw COPY, streamed from this client like the import's data, timed from the first byte to commit: the
   TSV into a plain table with the same data columns (no index, no constraint); the same into a copy of the
   product table (its checks and indexes); the approved-tag rows into a copy of the product-tag table (its
   checks, indexes and deferred foreign keys to the product copy and to a table of the tag ids). The
   last two together are the "same-tables floor": the same rows written raw into tables shaped like the
   import's destination.
4. The import: a fresh interpreter runs ``annotation.services.imports.import_products`` (the service the
   ``import_products`` command and the REST job call), with its default settings, on the JSONL file.
   Timed around the call; peak RSS of the importing process and of its parser process (``getrusage``).
5. A second import of the same file (must change nothing; shows the unchanged-row path's speed).
6. Checks the database (products, approved tags), drops the database, writes the figures between the
   ``import`` markers of ``bench/README.md``.

Targets (issue 2): import time within 2x of the raw COPY of the same rows (the same-tables floor; the
plain-table ratio is reported beside it); under 500 MB peak RSS (the importing
process plus its parser process, summed). Exit status 1 when one is missed.

    nice -n 10 .venv/bin/python bench/import_bench.py
    .venv/bin/python bench/import_bench.py --rows 100000 --no-write-readme
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, readme_section, also when loaded by path
from _common import (  # noqa: E402
    PRODUCT_DATA_COLUMNS,
    BenchError,
    bench_database_name,
    children_peak_rss_mb,
    database_create,
    database_drop,
    database_execute,
    database_url,
    django_env,
    django_migrate,
    django_setup,
    last_json_line,
    peak_rss_mb,
)
from readme_section import replace_section  # noqa: E402

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
README_PATH = Path(__file__).resolve().parent / "README.md"
README_SECTION = "import"
BENCH_DB = bench_database_name("import")
TARGET_RATIO_TO_COPY = 2.0
TARGET_PEAK_RSS_MB = 500.0
RAW_TABLE_COLUMNS = (
    "external_id varchar(255), title varchar(1000), description text, brand varchar(255), "
    "category_path jsonb, attributes jsonb, lang varchar(16), image_url varchar(2000), content_hash varchar(64)"
)

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time of a PostgreSQL backend process, when the server runs on this machine (else None).

    Wall-clock figures on a shared machine move with its load; the database's own CPU time does not
    (much), so both are reported."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_delta(pid: int, before: float | None) -> float | None:
    after = backend_cpu_seconds(pid)
    return None if before is None or after is None else after - before


def _django_env(db_url: str) -> dict[str, str]:
    return django_env(db_url, PYTHONPATH=str(REPO_ROOT))


# --------------------------------------------------------------------------------------------------------
# Input files


def build_files(
    data_dir: Path,
    rows: int,
    tag_share: float,
    seed: int,
    jsonl_path: Path,
    tsv_path: Path,
    tags_tsv_path: Path,
) -> dict:
    """Write the JSONL catalog and the matching COPY text (products, and the approved-tag rows the import
    will write: product row number, tag number); returns a summary of what was written."""
    import orjson

    from annotation.io.readers import validate_row
    from annotation.services.imports import encode_copy_line
    from annotation.taxonomy.names import normalize_tag_name

    sources = sorted(data_dir.glob("*/dev.jsonl"))
    if not sources:
        raise BenchError(f"no */dev.jsonl under {data_dir}")
    pool: list[tuple[str, bytes]] = []
    per_set: dict[str, int] = {}
    for source in sources:
        with source.open("rb") as stream:
            set_lines = [(source.parent.name, line) for line in stream if line.strip()]
        per_set[source.parent.name] = len(set_lines)
        pool.extend(set_lines)
    rng = random.Random(seed)
    rng.shuffle(pool)  # interleave the sets, English and Chinese
    # Source rows the import rightly rejects (e.g. a few Chinese reviews longer than a title may be) are
    # left out: the benchmark measures a clean catalog.
    rejected: set[int] = set()
    left_out: dict[str, int] = {}
    tagged = langs_zh = written = index = tag_rows = 0
    tag_numbers: dict[str, int] = {}
    with jsonl_path.open("wb") as jsonl, tsv_path.open("wb") as tsv, tags_tsv_path.open("wb") as tags_tsv:
        while written < rows:
            repetition, position = divmod(index, len(pool))
            index += 1
            if position in rejected:
                continue
            if len(rejected) == len(pool):
                raise BenchError(f"no source row under {data_dir} is a valid catalog row")
            set_name, line = pool[position]
            record = orjson.loads(line)
            if repetition:
                record["id"] = f"{record['id']}~{repetition}"
            row = validate_row(record, written + 1)
            if isinstance(row, list):
                rejected.add(position)
                left_out[set_name] = left_out.get(set_name, 0) + 1
                continue
            if rng.random() < tag_share and record.get("tags"):
                tagged += 1
                names = {normalize_tag_name(name) for name in row.tags or ()}
                for name in sorted(names):
                    number = tag_numbers.setdefault(name, len(tag_numbers) + 1)
                    tags_tsv.write(f"{written + 1}\t{number}\n".encode())
                    tag_rows += 1
            else:
                record.pop("tags", None)
                row.tags = None
            langs_zh += record.get("lang") == "zh"
            jsonl.write(orjson.dumps(record) + b"\n")
            tsv.write(encode_copy_line(row))
            written += 1
    return {
        "sets": per_set,
        "left_out": left_out,
        "source_rows": len(pool),
        "rows": rows,
        "tagged_rows": tagged,
        "tag_rows": tag_rows,
        "distinct_tags": len(tag_numbers),
        "zh_rows": langs_zh,
        "jsonl_bytes": jsonl_path.stat().st_size,
        "tsv_bytes": tsv_path.stat().st_size,
    }


# --------------------------------------------------------------------------------------------------------
# Database


def checkpoint(bench_url: str) -> None:
    """Flush dirty buffers so that each timed phase starts from the same state."""
    database_execute(bench_url, "CHECKPOINT")


# The constant columns an import sets on a new product, as defaults of the product-shaped copy table.
_PRODUCT_SHAPED_DEFAULTS = {
    "review_status": "'unreviewed'",
    "priority": "0",
    "needs_suggestion": "true",
    "created_at": "now()",
    "updated_at": "now()",
}


def _timed_copy(conn, statement: str, path: Path) -> tuple[float, float | None]:
    """Stream ``path`` through ``statement`` and commit: (wall seconds, backend CPU seconds)."""
    pid = conn.info.backend_pid
    cpu_before = backend_cpu_seconds(pid)
    started = time.perf_counter()
    with conn.cursor() as cursor, path.open("rb") as stream:
        with cursor.copy(statement) as copy:
            while chunk := stream.read(1 << 20):
                copy.write(chunk)
        conn.commit()
    return time.perf_counter() - started, _cpu_delta(pid, cpu_before)


def raw_copy(bench_url: str, tsv_path: Path, *, product_shaped: bool, keep: bool = False) -> dict:
    """COPY the TSV into a plain table (the data columns, no index or constraint), or into a copy of the
    product table with all its columns, checks and indexes (what any upsert into it must maintain)."""
    import psycopg

    checkpoint(bench_url)
    with psycopg.connect(bench_url) as conn:
        if product_shaped:
            conn.execute("CREATE TABLE bench_raw_copy (LIKE annotation_product INCLUDING ALL)")
            for column, default in _PRODUCT_SHAPED_DEFAULTS.items():
                conn.execute(f"ALTER TABLE bench_raw_copy ALTER COLUMN {column} SET DEFAULT {default}")
        else:
            conn.execute(f"CREATE TABLE bench_raw_copy ({RAW_TABLE_COLUMNS})")
        conn.commit()
        elapsed, backend_cpu = _timed_copy(
            conn, f"COPY bench_raw_copy ({', '.join(PRODUCT_DATA_COLUMNS)}) FROM STDIN", tsv_path
        )
        rows = conn.execute("SELECT count(*) FROM bench_raw_copy").fetchone()[0]
        if not keep:
            conn.execute("DROP TABLE bench_raw_copy")
        conn.commit()
    return {"seconds": elapsed, "rows": rows, "backend_cpu": backend_cpu}


def raw_copy_tags(bench_url: str, tags_tsv_path: Path, distinct_tags: int) -> dict:
    """COPY the approved-tag rows into a copy of the product-tag table with its columns, checks, indexes
    and foreign keys (deferred, as Django declares them): to the product-shaped copy that ``raw_copy(...,
    keep=True)`` left (ids 1..N in file order, which the tag rows use) and to a table of the tag ids.
    Drops all three tables afterwards."""
    import psycopg

    checkpoint(bench_url)
    with psycopg.connect(bench_url) as conn:
        conn.execute("CREATE TABLE bench_raw_tags (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO bench_raw_tags SELECT generate_series(1, %s)", [distinct_tags])
        conn.execute("CREATE TABLE bench_raw_copy_tags (LIKE annotation_producttag INCLUDING ALL)")
        conn.execute("ALTER TABLE bench_raw_copy_tags ALTER COLUMN source SET DEFAULT 'import'")
        conn.execute("ALTER TABLE bench_raw_copy_tags ALTER COLUMN approved_at SET DEFAULT now()")
        conn.execute(
            "ALTER TABLE bench_raw_copy_tags ADD FOREIGN KEY (product_id) REFERENCES bench_raw_copy (id) "
            "DEFERRABLE INITIALLY DEFERRED"
        )
        conn.execute(
            "ALTER TABLE bench_raw_copy_tags ADD FOREIGN KEY (tag_id) REFERENCES bench_raw_tags (id) "
            "DEFERRABLE INITIALLY DEFERRED"
        )
        conn.commit()
        elapsed, backend_cpu = _timed_copy(
            conn, "COPY bench_raw_copy_tags (product_id, tag_id) FROM STDIN", tags_tsv_path
        )
        rows = conn.execute("SELECT count(*) FROM bench_raw_copy_tags").fetchone()[0]
        conn.execute("DROP TABLE bench_raw_copy_tags, bench_raw_copy, bench_raw_tags")
        conn.commit()
    return {"seconds": elapsed, "rows": rows, "backend_cpu": backend_cpu}


def same_tables_floor(result: dict) -> dict:
    """The raw COPY of the same rows into tables shaped like the import's destination: products plus their
    approved tags (the target's baseline)."""
    shaped, tags = result["raw_copy_product"], result.get("raw_copy_tags")
    if not tags:
        return shaped
    cpu = (
        shaped["backend_cpu"] + tags["backend_cpu"]
        if shaped.get("backend_cpu") is not None and tags.get("backend_cpu") is not None
        else None
    )
    return {"seconds": shaped["seconds"] + tags["seconds"], "rows": shaped["rows"], "backend_cpu": cpu}


def run_import(bench_url: str, jsonl_path: Path, *, ignore_tags: bool = False) -> dict:
    """Import in a fresh interpreter, so that its peak RSS is the import's alone."""
    checkpoint(bench_url)
    completed = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--import-worker",
            str(jsonl_path),
            *(["--worker-ignore-tags"] if ignore_tags else []),
        ],
        cwd=REPO_ROOT,
        env=_django_env(bench_url),
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise BenchError(f"import worker failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return last_json_line(completed.stdout)


def import_worker(jsonl_path: Path, *, ignore_tags: bool) -> None:
    import django

    django.setup()
    from django.db import connection

    from annotation.services.imports import import_products

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    cpu_before = backend_cpu_seconds(pid)
    started = time.perf_counter()
    stats = import_products(jsonl_path, ignore_tags=ignore_tags)
    elapsed = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    parser = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "seconds": elapsed,
        "rows_total": stats.rows_total,
        "rows_ok": stats.rows_ok,
        "rows_rejected": stats.rows_rejected,
        "created": stats.products_created,
        "updated": stats.products_updated,
        "tags_added": stats.tags_added,
        # Children: the parser process, joined by the import.
        "rss_importer_mb": peak_rss_mb(),
        "rss_parser_mb": children_peak_rss_mb(),
        "backend_cpu": _cpu_delta(pid, cpu_before),
        "importer_cpu": own.ru_utime + own.ru_stime,  # includes the interpreter's start-up and Django's
        "parser_cpu": parser.ru_utime + parser.ru_stime,
    }
    print(json.dumps(result))


def database_counts(bench_url: str) -> dict:
    import psycopg

    with psycopg.connect(bench_url) as conn:
        products, distinct_ids, hashes = conn.execute(
            "SELECT count(*), count(DISTINCT external_id), count(*) FILTER (WHERE content_hash <> '') "
            "FROM annotation_product"
        ).fetchone()
        tags = conn.execute("SELECT count(*) FROM annotation_tag").fetchone()[0]
        product_tags = conn.execute(
            "SELECT count(*) FROM annotation_producttag WHERE source = 'import'"
        ).fetchone()[0]
    return {
        "products": products,
        "distinct_ids": distinct_ids,
        "hashed": hashes,
        "tags": tags,
        "product_tags": product_tags,
    }


# --------------------------------------------------------------------------------------------------------
# Report


def imports_peak_rss_mb(result: dict) -> float:
    """The highest importing-process + parser-process peak RSS over the imports."""
    runs = [run for run in (result.get("products_only"), result["import"], result.get("reimport")) if run]
    return max(run["rss_importer_mb"] + run["rss_parser_mb"] for run in runs)


def _explanation(result: dict) -> list[str]:
    """Where the time goes, from the CPU figures (wall-clock ones move with the shared machine's load)."""
    plain, shaped = result["raw_copy"]["backend_cpu"], result["raw_copy_product"]["backend_cpu"]
    floor = same_tables_floor(result)["backend_cpu"]
    first, only = result["import"], result.get("products_only")
    # CPU is counted in clock ticks: a small run can read 0.0, which gives no ratio to explain.
    if not plain or not shaped or not floor or first.get("backend_cpu") is None:
        return []
    lines = [
        f"Where the time goes (PostgreSQL backend CPU, which the machine's load moves much less than wall "
        f"time): a COPY into a table shaped like the product table costs {shaped / plain:.1f}x a COPY into "
        f"a plain table ({shaped:.1f} s vs {plain:.1f} s): its unique key, indexes and check constraints, "
        "which any import into this schema must maintain. That is why the target's baseline is the raw "
        "COPY of the same rows into tables shaped like the destination (products and their approved tags: "
        f"{floor:.1f} s of backend CPU), with the plain-table COPY shown beside it.",
    ]
    if only and only.get("backend_cpu") is not None:
        lines.append(
            f"The products alone take {only['backend_cpu']:.1f} s ({only['backend_cpu'] / shaped:.2f}x the "
            "product-shaped COPY: the id lookups that make the import an upsert, per-batch transactions); "
            f"the approved tags add {first['backend_cpu'] - only['backend_cpu']:.1f} s for "
            f"{first['tags_added']:,} rows (tag-name resolution, the product-tag unique key and the "
            "foreign-key checks at commit)."
        )
    lines.append(
        f"The import's own Python work runs beside the database: {first['parser_cpu']:.1f} s in the parser "
        f"process and {first['importer_cpu']:.1f} s in the writer."
    )
    return lines


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def render(result: dict, command: str) -> str:
    files, first, second = result["files"], result["import"], result["reimport"]
    plain, shaped, floor = result["raw_copy"], result["raw_copy_product"], same_tables_floor(result)
    rows = files["rows"]
    ratio = first["seconds"] / floor["seconds"]
    plain_ratio = first["seconds"] / plain["seconds"]
    rss = imports_peak_rss_mb(result)

    def row(label: str, step: dict) -> str:
        return (
            f"| {label} | {step['seconds']:.1f} | {rows / step['seconds']:,.0f} | "
            f"{step['seconds'] / plain['seconds']:.2f}x | {step['seconds'] / floor['seconds']:.2f}x | "
            f"{_cpu(step.get('backend_cpu'))} |"
        )

    lines = [
        f"Measured {result['date']} on {result['machine']} (load average at start: {result['load']}"
        + (f", at the end: {result['load_at_end']}" if result.get("load_at_end") else "")
        + f"; the machine is shared), PostgreSQL {result['postgres']}, with:",
        "",
        "```",
        command,
        "```",
        "",
        f"Input: {rows:,} products ({files['jsonl_bytes'] / 1e6:,.0f} MB of JSONL) built from "
        f"{len(files['sets'])} sets of `../shared/data` ({files['source_rows']:,} source rows in a seeded random "
        f"order, repeated with varied ids; {files['zh_rows']:,} Chinese rows; {files['tagged_rows']:,} rows carry "
        f"their tags). Raw COPY input: the same rows as COPY text ({files['tsv_bytes'] / 1e6:,.0f} MB), "
        "validated and encoded beforehand (not timed), streamed from this client.",
        "",
    ]
    if files["left_out"]:
        lines += [
            "Source rows the import rejects were left out of the pool: "
            + ", ".join(f"{name} {count}" for name, count in files["left_out"].items())
            + " (the import's validation refuses them: titles longer than the 1,000 characters a product "
            "title holds).",
            "",
        ]
    lines += [
        "| step | seconds | products/s | vs plain COPY | vs same-tables COPY | PostgreSQL backend CPU s |",
        "|---|---:|---:|---:|---:|---:|",
        row("raw `COPY` of the products into a plain table (data columns, no index)", plain),
        row("raw `COPY` of the products into a copy of the product table (its checks and indexes)", shaped),
    ]
    if result.get("raw_copy_tags"):
        tags = result["raw_copy_tags"]
        lines += [
            f"| raw `COPY` of the {tags['rows']:,} approved-tag rows into a copy of the product-tag table "
            "(with its foreign keys to the two tables above) | "
            f"{tags['seconds']:.1f} | | | | {_cpu(tags.get('backend_cpu'))} |",
            row("**same-tables floor**: the two raw COPYs above (products + approved tags)", floor),
        ]
    if result.get("products_only"):
        lines.append(
            row(
                "`import_products --ignore-tags` into an empty catalog (products alone)",
                result["products_only"],
            )
        )
    lines += [
        row("`import_products` into an empty catalog (products and their tags)", first),
    ]
    if second:
        lines.append(row("the same file again (nothing changes)", second))
    counts = result["counts"]
    lines += [
        "",
        f"Import process CPU (products and tags): {first['importer_cpu']:.1f} s in the importing process (with "
        f"its start-up) and {first['parser_cpu']:.1f} s in the parser process. Peak RSS: importing process "
        f"{first['rss_importer_mb']:.0f} MB + parser process {first['rss_parser_mb']:.0f} MB; highest sum over "
        f"the imports {rss:.0f} MB (shared pages counted twice).",
        f"Database after the import: {counts['products']:,} products, {counts['tags']:,} tags, "
        f"{counts['product_tags']:,} approved import tags; first import: {first['created']:,} created, "
        f"{first['tags_added']:,} tags approved"
        + (
            f"; second import: {second['created']} created, {second['updated']} updated, "
            f"{second['tags_added']} tags approved."
            if second
            else "."
        ),
        "",
        *_explanation(result),
        "",
        f"Targets: import (products and tags) within {TARGET_RATIO_TO_COPY:.0f}x of a raw COPY of the same rows "
        f"into tables shaped like the destination — {'met' if ratio <= TARGET_RATIO_TO_COPY else 'MISSED'} "
        f"({ratio:.2f}x; {plain_ratio:.1f}x a COPY of the products alone into a plain table); peak RSS under "
        f"{TARGET_PEAK_RSS_MB:.0f} MB — {'met' if rss < TARGET_PEAK_RSS_MB else 'MISSED'} ({rss:.0f} MB).",
    ]
    notes = result.get("notes")
    if notes:
        lines += ["", notes]
    return "\n".join(lines)


def write_readme(section: str, path: Path = README_PATH) -> None:
    try:
        replace_section(README_SECTION, None, section, path)
    except LookupError as exc:
        raise BenchError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--tag-share", type=float, default=0.25, help="share of rows that keep their tags")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a database on the server to use for CREATE/DROP DATABASE (the bench database is created next to it)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write the input files (default: a temp dir)"
    )
    parser.add_argument("--keep-files", action="store_true")
    parser.add_argument("--no-reimport", action="store_true", help="skip the second import of the same file")
    parser.add_argument("--no-write-readme", action="store_true")
    parser.add_argument("--notes", default="", help="a sentence added under the figures in the README")
    parser.add_argument("--bench-db", default=BENCH_DB, help="the throwaway database (created, then dropped)")
    parser.add_argument(
        "--no-products-only", action="store_true", help="skip the import with --ignore-tags (products alone)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="render (and write) the README section from a file --json wrote; no run",
    )
    parser.add_argument("--import-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-ignore-tags", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.import_worker:
        import_worker(args.import_worker, ignore_tags=args.worker_ignore_tags)
        return 0
    if args.from_json:
        result = json.loads(args.from_json.read_text(encoding="utf-8"))
        return report(result, result["command"], write=not args.no_write_readme)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.bench_db):
        parser.error("--bench-db must be a plain lower-case identifier")

    admin_url = args.database_url
    bench_url = database_url(admin_url, args.bench_db)
    django_setup(bench_url, PYTHONPATH=str(REPO_ROOT))
    import psycopg

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="import-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    jsonl_path, tsv_path = workdir / "catalog.jsonl", workdir / "catalog.copy.tsv"
    tags_tsv_path = workdir / "catalog.tags.copy.tsv"
    command = "nice -n 10 .venv/bin/python bench/import_bench.py" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:]) if (argv or sys.argv[1:]) else ""
    )
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}",
        "load": ", ".join(f"{value:.1f}" for value in os.getloadavg()),
        "notes": args.notes,
        "command": command,
    }
    try:
        started = time.perf_counter()
        print(f"building {args.rows:,} rows under {workdir} ...", flush=True)
        result["files"] = build_files(
            args.data_dir, args.rows, args.tag_share, args.seed, jsonl_path, tsv_path, tags_tsv_path
        )
        print(f"  built in {time.perf_counter() - started:.0f} s: {result['files']}", flush=True)
        database_create(bench_url, admin_url=admin_url)
        django_migrate(_django_env(bench_url))
        with psycopg.connect(bench_url) as conn:
            result["postgres"] = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        print("raw COPY into a plain table ...", flush=True)
        result["raw_copy"] = raw_copy(bench_url, tsv_path, product_shaped=False)
        print(f"  {result['raw_copy']}", flush=True)
        print("raw COPY into a product-shaped table ...", flush=True)
        result["raw_copy_product"] = raw_copy(bench_url, tsv_path, product_shaped=True, keep=True)
        print(f"  {result['raw_copy_product']}", flush=True)
        print("raw COPY of the approved-tag rows into a product-tag-shaped table ...", flush=True)
        result["raw_copy_tags"] = raw_copy_tags(bench_url, tags_tsv_path, result["files"]["distinct_tags"])
        print(f"  {result['raw_copy_tags']}", flush=True)
        result["products_only"] = None
        if not args.no_products_only:
            print("import --ignore-tags (products alone) ...", flush=True)
            result["products_only"] = run_import(bench_url, jsonl_path, ignore_tags=True)
            print(f"  {result['products_only']}", flush=True)
            database_execute(
                bench_url, "TRUNCATE annotation_product, annotation_producttag, annotation_tag CASCADE"
            )
        print("import ...", flush=True)
        result["import"] = run_import(bench_url, jsonl_path)
        print(f"  {result['import']}", flush=True)
        result["reimport"] = None
        if not args.no_reimport:
            print("import of the same file again ...", flush=True)
            result["reimport"] = run_import(bench_url, jsonl_path)
            print(f"  {result['reimport']}", flush=True)
        result["counts"] = database_counts(bench_url)
    finally:
        database_drop(bench_url, admin_url=admin_url)
        if not args.keep_files:
            for path in (jsonl_path, tsv_path, tags_tsv_path):
                path.unlink(missing_ok=True)
            if not args.workdir:
                workdir.rmdir()

    first, second, counts = result["import"], result["reimport"], result["counts"]
    problems = []
    if first["rows_rejected"] or first["rows_ok"] != args.rows:
        problems.append(f"the import rejected rows: {first}")
    if counts["products"] != counts["distinct_ids"] or counts["products"] != first["created"]:
        problems.append(f"products in the database do not match the import: {counts} vs {first}")
    if counts["product_tags"] != first["tags_added"]:
        problems.append(f"approved tags do not match the import: {counts} vs {first}")
    only = result["products_only"]
    if only and (only["rows_ok"] != args.rows or only["created"] != first["created"] or only["tags_added"]):
        problems.append(f"the products-only import differs: {only}")
    if second and (second["created"] or second["updated"] or second["tags_added"]):
        problems.append(f"re-importing the same file changed something: {second}")
    if problems:
        raise BenchError("; ".join(problems))

    result["load_at_end"] = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return report(result, command, write=not args.no_write_readme)


def report(result: dict, command: str, *, write: bool) -> int:
    """Print the section, write it into bench/README.md, and return the exit status (1: target missed)."""
    section = render(result, command)
    print()
    print(section)
    if write:
        write_readme(section)
        print(f"\nwritten to {README_PATH}")
    ratio = result["import"]["seconds"] / same_tables_floor(result)["seconds"]
    return 0 if ratio <= TARGET_RATIO_TO_COPY and imports_peak_rss_mb(result) < TARGET_PEAK_RSS_MB else 1


if __name__ == "__main__":
    sys.exit(main())
