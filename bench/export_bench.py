"""Export of approved tags at scale: 1,000,000 products × 5 tags in a throwaway PostgreSQL database.

    .venv/bin/python bench/export_bench.py [--products 1000000] [--tags-per-product 5] [--keep | --reuse]

Creates ``tagstudio_bench_export`` (dropped first if left over, and again at the end unless ``--keep``),
migrates it and COPY-loads a catalog: a 2,000-tag taxonomy three levels deep, products, and
``--tags-per-product`` approved tags each (review/import sources, approvers, model versions). Then it
measures, each the best of ``--runs``:

- raw COPY: ``psql`` running ``COPY (SELECT … product ⋈ product_tag ⋈ tag ⋈ user ⋈ model_version) TO
  STDOUT`` into /dev/null — the floor: the same join, no formatting; measured right before every export run
  so that both see the same load (the machine is shared), the best ratio counts;
- HTTP: ``GET /api/v1/export/approved-tags/?format=…`` from a real gunicorn process on loopback (one
  sync worker), the body read to the end; peak RSS of that worker (VmHWM);
- command: ``manage.py export_tags FILE --format …`` as a user runs it (progress bar on); peak RSS of the
  process (wait4 ru_maxrss).
A warm-up request first (the worker's first request imports the URL conf and every view).

Rows are approved product-tag rows (``products × tags-per-product``). Targets: HTTP and command within
2× the raw COPY's wall time and peak RSS under 300 MB. Prints a table, rewrites the ``export`` section of
bench/README.md, exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # bench/ is on sys.path when a bench runs as a script
    BENCH_POSTGRES_URL,
    SERVER_SETTINGS,
    GunicornServer,
    bench_database_name,
    database_create,
    database_drop,
    database_url,
    django_env,
    django_migrate,
    gunicorn_start,
    peak_rss_mb,
    process_wait,
)
from readme_section import replace_section

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = bench_database_name("export")
DATABASE_URL = database_url(BENCH_POSTGRES_URL, DB_NAME)
README_PATH = Path(__file__).resolve().parent / "README.md"
README_SECTION = "export"
README_HEADING = "## Export (`bench/export_bench.py`)"
TARGET_RATIO = 2.0
TARGET_RSS_MB = 300.0
N_TAGS, N_ROOTS, N_MID = 2000, 20, 200
N_USERS, N_VERSIONS = 10, 5
BENCH_TOKEN = secrets.token_hex(20)


def log(message: str) -> None:
    print(f"[export-bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def app_env() -> dict[str, str]:
    """Production settings against the bench database (DEBUG off, generous API rate limit)."""
    broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/15"  # never contacted
    return django_env(DATABASE_URL, **SERVER_SETTINGS, CELERY_BROKER_URL=broker)


# --- synthetic catalog ------------------------------------------------------------------------------------


def load(products: int, per_product: int, seed: int) -> None:
    import psycopg

    log("migrating")
    django_migrate(app_env())
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        user_ids = [
            conn.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
                " is_active, date_joined) VALUES ('!', false, %s, '', '', '', %s, true, now()) RETURNING id",
                (f"user{i}", i == 0),
            ).fetchone()[0]
            for i in range(N_USERS)
        ]
        admin_group = conn.execute("SELECT id FROM auth_group WHERE name = 'admin'").fetchone()
        if admin_group is None:
            raise SystemExit("the admin role group is missing after migrate (annotation.roles.roles_ensure)")
        conn.execute(
            "INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)", (user_ids[0], admin_group[0])
        )
        conn.execute(
            "INSERT INTO authtoken_token (key, user_id, created) VALUES (%s, %s, now())",
            (BENCH_TOKEN, user_ids[0]),
        )
        version_ids = [
            conn.execute(
                "INSERT INTO annotation_modelversion (version, state, is_active, artifact_path, tagger, base_model,"
                " device, config, metrics, train_size, valid_size, data_fingerprint, created_at) VALUES"
                " (%s, 'ready', false, '', 'default', '', 'cpu', '{}', '{}', 0, 0, '', now()) RETURNING id",
                (f"v{i}",),
            ).fetchone()[0]
            for i in range(N_VERSIONS)
        ]
        log(f"loading {N_TAGS} tags")
        with conn.cursor().copy(
            "COPY annotation_tag (id, name, normalized_name, parent_id, description, is_active, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            for i in range(1, N_TAGS + 1):
                parent = (
                    None
                    if i <= N_ROOTS
                    else (rng.randint(1, N_ROOTS) if i <= N_MID else rng.randint(N_ROOTS + 1, N_MID))
                )
                copy.write_row((i, f"Tag {i}", f"tag {i}", parent, "", True, now, now))
        conn.execute("SELECT setval(pg_get_serial_sequence('annotation_tag', 'id'), %s)", (N_TAGS,))
        log(f"loading {products:,} products")
        with conn.cursor().copy(
            "COPY annotation_product (id, external_id, title, description, brand, category_path, attributes, lang,"
            " image_url, content_hash, review_status, priority, needs_suggestion, created_at, updated_at,"
            " tags_updated_at) FROM STDIN"
        ) as copy:
            for i in range(1, products + 1):
                copy.write_row(
                    (i, f"SKU-{i:08d}", f"Product {i}", "", "Acme", "[]", "{}", "en", "", "", "reviewed", 0.0,
                     False, now, now, now)
                )  # fmt: skip
        conn.execute("SELECT setval(pg_get_serial_sequence('annotation_product', 'id'), %s)", (products,))
        log(f"loading {products * per_product:,} approved tags")
        leaves = list(range(N_MID + 1, N_TAGS + 1))
        with conn.cursor().copy(
            "COPY annotation_producttag (product_id, tag_id, source, approved_by_id, model_version_id, approved_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(1, products + 1):
                reviewed = i % 3 != 0
                user = user_ids[i % N_USERS] if reviewed else None
                version = version_ids[i % N_VERSIONS] if reviewed else None
                source = "review" if reviewed else "import"
                for tag in rng.sample(leaves, per_product):
                    copy.write_row((i, tag, source, user, version, now))
        log("analyzing")
        conn.execute("VACUUM ANALYZE")


def token_reset() -> None:
    """The bench admin's API token for this run (a --reuse run gets a fresh one too)."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM authtoken_token WHERE user_id = (SELECT id FROM auth_user WHERE username = 'user0')"
        )
        conn.execute(
            "INSERT INTO authtoken_token (key, user_id, created)"
            " SELECT %s, id, now() FROM auth_user WHERE username = 'user0'",
            (BENCH_TOKEN,),
        )


# --- measurements ------------------------------------------------------------------------------------------

RAW_SQL = (
    "COPY (SELECT p.external_id, t.name, pt.source, u.username, mv.version, pt.approved_at, p.updated_at,"
    " p.tags_updated_at FROM annotation_product p"
    " JOIN annotation_producttag pt ON pt.product_id = p.id"
    " JOIN annotation_tag t ON t.id = pt.tag_id"
    " LEFT JOIN auth_user u ON u.id = pt.approved_by_id"
    " LEFT JOIN annotation_modelversion mv ON mv.id = pt.model_version_id) TO STDOUT"
)


def measure_raw_copy() -> dict:
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(["psql", DATABASE_URL, "-X", "-q", "-c", RAW_SQL], stdout=sink, check=True)
    return {"seconds": time.perf_counter() - start}


def gunicorn_export_start() -> GunicornServer:
    """One sync worker, so that the worker's peak RSS is the export's."""
    return gunicorn_start(
        "tagstudio.wsgi", env=app_env(), options=["-w", "1", "--timeout", "900", "--log-level", "warning"]
    )


def worker_peak_rss_mb(server: GunicornServer) -> float:
    workers = server.worker_pids()
    if len(workers) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {workers}")
    return peak_rss_mb(workers[0])


def measure_http(server: GunicornServer, file_format: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=900)
    start = time.perf_counter()
    connection.request(
        "GET",
        f"/api/v1/export/approved-tags/?format={file_format}",
        headers={"Authorization": f"Token {BENCH_TOKEN}"},
    )
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"export answered {response.status}: {response.read(2000)!r}")
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
    seconds = time.perf_counter() - start
    connection.close()
    return {"seconds": seconds, "bytes": size, "rss_mb": worker_peak_rss_mb(server)}


def measure_command(file_format: str, workdir: Path) -> dict:
    target = workdir / f"export.{file_format}"
    start = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, "manage.py", "export_tags", str(target), "--format", file_format],
        cwd=REPO_ROOT, env=app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    finished = process_wait(process)
    seconds = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"export_tags exited {finished.returncode}")
    size = target.stat().st_size
    target.unlink()
    return {"seconds": seconds, "bytes": size, "rss_mb": finished.peak_rss_mb}


def paired(runs: int, measure) -> dict:
    """Each run right after a raw COPY of its own, so both see the same load on a shared machine; the run
    with the best ratio counts (its raw COPY time is reported with it)."""
    results = []
    for _ in range(runs):
        raw = measure_raw_copy()
        result = measure()
        results.append({**result, "raw_seconds": raw["seconds"], "ratio": result["seconds"] / raw["seconds"]})
    return min(results, key=lambda r: r["ratio"])


# --- report ------------------------------------------------------------------------------------------------


def readme_update(section: str) -> None:
    replace_section(README_SECTION, README_HEADING, section, README_PATH)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--tags-per-product", type=int, default=5)
    parser.add_argument("--formats", default="jsonl,csv,json", help="comma-separated export formats to time")
    parser.add_argument("--runs", type=int, default=2, help="runs per measurement (the best counts)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database for inspection")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a database kept by an earlier --keep run"
    )
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    rows = args.products * args.tags_per_product

    if not args.reuse:
        database_create(DATABASE_URL)
    workdir = Path(tempfile.mkdtemp(prefix="export-bench-"))
    server = None
    try:
        if not args.reuse:
            load(args.products, args.tags_per_product, args.seed)
        elif args.keep is False:
            log("reusing the kept database (it is dropped at the end; pass --keep to keep it)")
        token_reset()
        server = gunicorn_export_start()
        log("warming up (first request loads the URL conf, first COPY the caches)")
        measure_http(server, "jsonl")
        results = []
        for file_format in formats:
            log(f"HTTP stream, {file_format} (each run paired with a raw COPY)")
            http_run = paired(args.runs, lambda f=file_format: measure_http(server, f))
            log(f"export_tags command, {file_format} (each run paired with a raw COPY)")
            command_run = paired(args.runs, lambda f=file_format: measure_command(f, workdir))
            results.append((file_format, http_run, command_run))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            database_drop(DATABASE_URL)

    misses: list[str] = []
    lines = [
        f"{args.products:,} products × {args.tags_per_product} approved tags = {rows:,} rows, PostgreSQL 15 on "
        f"loopback, {os.cpu_count()} CPU cores (shared machine). Each run follows its own raw COPY (psql running "
        "`COPY (SELECT … product ⋈ product_tag ⋈ tag ⋈ user ⋈ model_version) TO STDOUT` into /dev/null); the "
        f"best ratio of {args.runs} runs counts.",
        "",
        "| path | format | wall s | rows/s | raw COPY s | raw rows/s | × raw COPY | peak RSS MB | bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for file_format, http_run, command_run in results:
        for name, run in (
            ("HTTP stream (gunicorn, 1 sync worker)", http_run),
            ("`export_tags` command", command_run),
        ):
            ratio = run["ratio"]
            lines.append(
                f"| {name} | {file_format} | {run['seconds']:.1f} | {rows / run['seconds']:,.0f} | "
                f"{run['raw_seconds']:.1f} | {rows / run['raw_seconds']:,.0f} | {ratio:.2f} | "
                f"{run['rss_mb']:.0f} | {run['bytes']:,} |"
            )
            if ratio > TARGET_RATIO:
                misses.append(f"{name} {file_format}: {ratio:.2f}× raw COPY (target ≤ {TARGET_RATIO}×)")
            if run["rss_mb"] > TARGET_RSS_MB:
                misses.append(
                    f"{name} {file_format}: peak RSS {run['rss_mb']:.0f} MB (target < {TARGET_RSS_MB} MB)"
                )
    verdict = "all targets met" if not misses else "MISSED: " + "; ".join(misses)
    lines += [
        "",
        f"Targets: within {TARGET_RATIO:.0f}× the raw COPY's wall time, peak RSS under {TARGET_RSS_MB:.0f} MB — "
        f"{verdict}.",
        f"Command: `.venv/bin/python bench/export_bench.py --products {args.products} --tags-per-product "
        f"{args.tags_per_product} --formats {','.join(formats)} --runs {args.runs}` "
        f"({dt.date.today().isoformat()}).",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_readme:
        readme_update(report)
    print(json.dumps({"misses": misses}))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
