"""Tag-centric bulk review at 1,000,000 products x 500 tags: candidate pages, bulk accepts, peak RSS.

1. Creates a throwaway database (``tagstudio_bench_bulk``) and migrates it.
2. Loads it inside PostgreSQL (``INSERT ... SELECT`` over ``generate_series``, seeded with ``setseed``):
   ``--products`` products (default 1,000,000; title, brand, a two-level category, an image URL), 500 leaf
   tags in 20 groups of 25 under 20 parent tags, an active model version and ``TOP_K`` = 20 suggestions for
   every product (one tag of each group; within a group the k-th tag is drawn with probability ~e^(-k/3),
   so each group's first tag is suggested for ~28% of the catalog and its last for ~0.03%); 10% of the
   products reviewed, with their selected suggestions approved. 20,000,000 suggestion rows are generated
   where they are stored: producing and sending them from Python would take longer than the whole
   measurement. The suggestion table's indexes are dropped for the load and built after it (as a
   restore does), then VACUUM ANALYZE.
3. Measures, in this process, through the REST API (DRF view, serializer, permission check; Django's test
   client, no network: the figures are the application's and PostgreSQL's time):
   - candidate pages (``GET /api/v1/tags/{id}/candidates/``, 100 rows): for the most frequent tag (the
     first tag of group 0) and a rare one (the last tag of group 0), unfiltered (highest score first) and
     filtered (``min_score=0.3&max_score=0.8&status=unreviewed&category=Fashion``), each ``--pages``
     pages deep by following ``next`` (restarting at the first page when a rare tag runs out), plus the
     lowest-score-first order; target p95 < 100 ms for each of the four targeted cases;
   - bulk accept of 1,000 listed products (``POST .../bulk-review/`` with ``accept``, runs in the request;
     target < 2 s);
   - bulk accept by filter of ~100,000 products (``accept_filter`` with the ``min_score`` that selects
     100,000 of the frequent tag's unreviewed candidates: over 5,000, so it is queued as a job; the job's
     service, ``bulk_action_run``, then runs here as the worker would), timed from the request to the
     job's end; target < 60 s;
   - and, without targets, the count shown before "select all", the precision bands, the filtered pages
     again right after the 100,000-product accept, and the undo of that action.
   Peak RSS of this process (which holds everything above) < 500 MB.
4. Drops the database (``--keep-db`` keeps it), writes the figures between the ``bulk`` markers of
   ``bench/README.md`` and exits 1 when a target is missed.

    nice -n 10 .venv/bin/python bench/bulk_bench.py
    .venv/bin/python bench/bulk_bench.py --products 20000 --select 200 --by-filter 2000 --no-write-readme
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, readme_section, also when loaded by path
from _common import (  # noqa: E402
    BENCH_POSTGRES_URL,
    SERVER_SETTINGS,
    BenchError,
    bench_database_name,
    database_create,
    database_drop,
    database_execute,
    database_url,
    django_env,
    django_migrate,
    django_setup,
    peak_rss_mb,
)
from readme_section import replace_section  # noqa: E402

README_PATH = Path(__file__).resolve().parent / "README.md"
BENCH_DB = bench_database_name("bulk")
TARGET_PAGE_P95_MS = 100.0
TARGET_SELECTED_S = 2.0
TARGET_FILTER_S = 60.0
TARGET_RSS_MB = 500.0
GROUPS, PER_GROUP, TOP_K = 20, 25, 20
FILTERED = {"min_score": "0.3", "max_score": "0.8", "status": "unreviewed", "category": "Fashion"}

# fmt: off
ADJECTIVES = ["cotton", "linen", "wool", "silk", "denim", "leather", "red", "blue", "navy", "black", "white",
              "striped", "floral", "slim", "relaxed", "classic", "vintage", "summer", "winter", "organic"]
NOUNS = ["dress", "shirt", "blouse", "jeans", "trousers", "skirt", "jacket", "coat", "hoodie", "sweater",
         "sneakers", "boots", "sandals", "backpack", "handbag", "scarf"]
# fmt: on


def _sql_array(words: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]"


def load_catalog(bench_url: str, *, products: int, reviewed_share: float, seed: float) -> dict:
    """Tags and version through the ORM, products / suggestions / approved tags generated in PostgreSQL."""
    import psycopg

    from annotation.models import ModelState, ModelVersion, Tag

    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    parents = [Tag.objects.create(name=f"Group {g}", normalized_name=f"group {g}") for g in range(GROUPS)]
    leaves = Tag.objects.bulk_create(
        [
            Tag(name=f"Tag {g}-{k}", normalized_name=f"tag {g}-{k}", parent=parents[g])
            for g in range(GROUPS)
            for k in range(PER_GROUP)
        ]
    )
    version = ModelVersion.objects.create(
        version="bench-v1", state=ModelState.READY, is_active=True, activated_at=now
    )
    leaf_ids = [tag.id for tag in leaves]
    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", [seed])
        conn.execute(
            f"""
            INSERT INTO annotation_product (id, external_id, title, description, brand, category_path, attributes,
                lang, image_url, content_hash, review_status, priority, needs_suggestion, suggested_by_id,
                created_at, updated_at, tags_updated_at)
            SELECT g, 'BULK-' || lpad(g::text, 7, '0'), title, title || ' for every day', brand,
                   jsonb_build_array('Fashion', noun), '{{}}'::jsonb, 'en',
                   'https://img.example.com/' || g || '.jpg', md5(g::text) || md5(title),
                   CASE WHEN reviewed THEN 'reviewed' ELSE 'unreviewed' END, random(), false, %s, %s, %s,
                   CASE WHEN reviewed THEN %s::timestamptz END
            FROM (
                SELECT g,
                       a[1 + floor(random() * {len(ADJECTIVES)})::int] || ' ' || a[1 + floor(random() * {len(ADJECTIVES)})::int]
                         || ' ' || n[1 + floor(random() * {len(NOUNS)})::int] AS title,
                       n[1 + floor(random() * {len(NOUNS)})::int] AS noun,
                       'Brand' || floor(random() * 400)::int AS brand,
                       random() < %s AS reviewed
                FROM generate_series(1, %s) g, (SELECT {_sql_array(ADJECTIVES)} AS a, {_sql_array(NOUNS)} AS n) words
            ) x
            """,  # noqa: S608 (constants of this file, not input)
            [version.id, now, now, now, reviewed_share, products],
        )
        conn.execute("SELECT setval('annotation_product_id_seq', %s)", [products])
        product_s = time.perf_counter() - started

        # The suggestion table's indexes and its unique constraint go for the load and come back after it.
        index_defs = [
            row[0]
            for row in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'annotation_suggestion' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'annotation_suggestion'::regclass)"
            )
        ]
        index_names = [
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'annotation_suggestion' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'annotation_suggestion'::regclass)"
            )
        ]
        constraints = list(
            conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'annotation_suggestion'::regclass AND contype IN ('u', 'f', 'c')"
            )
        )
        for name in index_names:
            conn.execute(f'DROP INDEX "{name}"')
        for name, _ in constraints:
            conn.execute(f'ALTER TABLE annotation_suggestion DROP CONSTRAINT "{name}"')
        loaded = time.perf_counter()
        conn.execute(
            f"""
            INSERT INTO annotation_suggestion (product_id, tag_id, model_version_id, score, selected, created_at)
            SELECT p, tag_id, %s, score, score >= 0.5, %s
            FROM (
                SELECT p, (%s::bigint[])[k * {PER_GROUP} + 1 + LEAST({PER_GROUP - 1}, floor(-ln(1.0 - random()) * 3))::int] AS tag_id,
                       round(random()::numeric, 4)::float8 AS score
                FROM generate_series(1, %s) p CROSS JOIN generate_series(0, {TOP_K - 1}) k
            ) x
            """,  # noqa: S608
            [version.id, now, leaf_ids, products],
        )
        suggestion_s = time.perf_counter() - loaded
        built = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")  # this session's index builds sort in memory
        for name, definition in constraints:
            conn.execute(f'ALTER TABLE annotation_suggestion ADD CONSTRAINT "{name}" {definition}')
        for definition in index_defs:
            conn.execute(definition)
        index_s = time.perf_counter() - built
        conn.execute(
            """
            INSERT INTO annotation_producttag (product_id, tag_id, source, approved_at)
            SELECT s.product_id, s.tag_id, 'import', %s FROM annotation_suggestion s
            JOIN annotation_product p ON p.id = s.product_id
            WHERE p.review_status = 'reviewed' AND s.selected
            """,
            [now],
        )
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM annotation_suggestion), (SELECT count(*) FROM annotation_producttag), "
            "(SELECT count(*) FROM annotation_product WHERE review_status = 'reviewed')"
        ).fetchone()
    analyzed = time.perf_counter()
    database_execute(bench_url, "VACUUM ANALYZE")
    return {
        "products": products,
        "tags": len(leaves) + len(parents),
        "suggestions": counts[0],
        "approved_tags": counts[1],
        "reviewed": counts[2],
        "frequent_tag": leaves[0].id,
        "rare_tag": leaves[PER_GROUP - 1].id,
        "product_s": product_s,
        "suggestion_s": suggestion_s,
        "index_s": index_s,
        "analyze_s": time.perf_counter() - analyzed,
        "load_s": time.perf_counter() - started,
    }


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def measure_pages(client, tag_id: int, params: dict, pages: int) -> dict:
    """``pages`` page loads following ``next`` (from the first page again when the list runs out)."""
    from urllib.parse import urlencode

    first = f"/api/v1/tags/{tag_id}/candidates/?{urlencode(params)}"
    for _ in range(2):  # warm-up: connection, plans, caches
        client.get(first)
    times, rows, url = [], 0, first
    depth = max_depth = 0
    while len(times) < pages:
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise BenchError(f"GET {url}: {response.status_code} {response.content[:300]!r}")
        body = response.json()
        rows += len(body["results"])
        depth += 1
        max_depth = max(max_depth, depth)
        url = body["next"] or first
        if not body["next"]:
            depth = 0
        url = url.replace("http://testserver", "")
    return {
        "requests": len(times),
        "p50_ms": statistics.median(times),
        "p95_ms": p95(times),
        "max_ms": max(times),
        "rows": rows,
        "deepest_page": max_depth,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=BENCH_POSTGRES_URL)
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--reviewed-share", type=float, default=0.1)
    parser.add_argument("--pages", type=int, default=40, help="page loads per candidate-page case")
    parser.add_argument("--select", type=int, default=1000, help="products in the listed bulk accept")
    parser.add_argument(
        "--by-filter", type=int, default=100_000, help="products in the bulk accept by filter"
    )
    parser.add_argument("--seed", type=float, default=0.42)
    parser.add_argument("--skip-undo", action="store_true")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write-readme", action="store_true")
    args = parser.parse_args()

    bench_url = database_create(database_url(args.database_url, BENCH_DB))
    var_dir = Path(tempfile.mkdtemp(prefix="bulk-bench-"))
    settings = {
        **SERVER_SETTINGS,
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "TAGSTUDIO_VAR_DIR": str(var_dir),
        "MODEL_DIR": str(var_dir / "models"),
        # Jobs are sent to an in-memory broker; the bench runs the job's service itself, as a worker would.
        "CELERY_BROKER_URL": "memory://",
        "RETRAIN_AFTER_REVIEWS": "0",  # a training job is not part of a bulk decision's time
    }
    env = django_env(bench_url, **settings)
    missed: list[str] = []
    try:
        django_migrate(env)
        django_setup(bench_url, **settings)
        catalog = load_catalog(
            bench_url, products=args.products, reviewed_share=args.reviewed_share, seed=args.seed
        )
        print(
            f"loaded {catalog['products']:,} products, {catalog['suggestions']:,} suggestions, "
            f"{catalog['approved_tags']:,} approved tags in {catalog['load_s']:.0f} s "
            f"(suggestions {catalog['suggestion_s']:.0f} s, indexes {catalog['index_s']:.0f} s, "
            f"analyze {catalog['analyze_s']:.0f} s)",
            flush=True,
        )
        results = run(catalog, args)
    finally:
        if not args.keep_db:
            database_drop(bench_url)
    results["catalog"] = {k: v for k, v in catalog.items() if not k.endswith("_tag")}
    results["peak_rss_mb"] = peak_rss_mb()
    for name, figures in results["pages"].items():
        if figures["targeted"] and figures["p95_ms"] >= TARGET_PAGE_P95_MS:
            missed.append(f"candidate page {name}: p95 {figures['p95_ms']:.0f} ms")
    if results["selected"]["seconds"] >= TARGET_SELECTED_S:
        missed.append(f"bulk accept of {args.select:,} listed: {results['selected']['seconds']:.2f} s")
    if results["by_filter"]["seconds"] >= TARGET_FILTER_S:
        missed.append(
            f"bulk accept of {results['by_filter']['done']:,} by filter: {results['by_filter']['seconds']:.1f} s"
        )
    if results["peak_rss_mb"] >= TARGET_RSS_MB:
        missed.append(f"peak RSS {results['peak_rss_mb']:.0f} MB")
    results["missed"] = missed
    print(json.dumps(results, indent=1, default=str))
    if not args.no_write_readme:
        replace_section(
            "bulk", "## Tag-centric bulk review (`bench/bulk_bench.py`)", readme_section(results, args)
        )
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    return 0


def run(catalog: dict, args) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIClient

    from annotation.models import BulkAction, JobStatus, ReviewEvent, Tag
    from annotation.roles import OPERATOR
    from annotation.selectors.bulk import CandidateFilter, candidate_count, tag_precision_bands
    from annotation.services.bulk import bulk_action_run
    from annotation.services.users import user_create

    user = user_create(
        username="bench-operator", password="bench-operator-pass-1", role=OPERATOR, validate=False
    )[0]
    user = get_user_model().objects.get(pk=user.pk)
    client = APIClient()
    client.force_authenticate(user)
    frequent, rare = catalog["frequent_tag"], catalog["rare_tag"]
    results: dict = {"pages": {}}
    cases = [
        ("frequent, unfiltered", frequent, {}, True),
        ("frequent, filtered", frequent, FILTERED, True),
        ("rare, unfiltered", rare, {}, True),
        ("rare, filtered", rare, FILTERED, True),
        ("frequent, lowest score first", frequent, {"order": "score"}, False),
        ("frequent, text (brand)", frequent, {"q": "Brand7", "status": "unreviewed"}, False),
    ]
    for name, tag_id, params, targeted in cases:
        figures = measure_pages(client, tag_id, params, args.pages)
        figures["targeted"] = targeted
        figures["candidates"] = candidate_count(
            tag=Tag.objects.get(pk=tag_id), filters=CandidateFilter(**_filter_kwargs(params))
        )
        results["pages"][name] = figures
        print(
            f"page {name}: p95 {figures['p95_ms']:.1f} ms over {figures['requests']} ({figures['candidates']:,} candidates)",
            flush=True,
        )

    tag = Tag.objects.get(pk=frequent)
    started = time.perf_counter()
    count_above = candidate_count(tag=tag, filters=CandidateFilter(min_score=0.9, status="unreviewed"))
    results["count_above_ms"] = (time.perf_counter() - started) * 1000
    results["count_above"] = count_above
    started = time.perf_counter()
    tag_precision_bands(tag=tag)
    results["bands_ms"] = (time.perf_counter() - started) * 1000

    # 1,000 listed products: the frequent tag's unreviewed candidates scoring under 0.3 (the filter run
    # below takes the top of the list, so the two do not overlap).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.external_id FROM annotation_suggestion s JOIN annotation_product p ON p.id = s.product_id "
            "WHERE s.tag_id = %s AND s.score < 0.3 AND p.review_status = 'unreviewed' ORDER BY s.product_id LIMIT %s",
            [frequent, args.select],
        )
        listed = [row[0] for row in cursor.fetchall()]
    started = time.perf_counter()
    response = client.post(f"/api/v1/tags/{frequent}/bulk-review/", {"accept": listed}, format="json")
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"listed bulk accept: {response.status_code} {response.content[:300]!r}")
    body = response.json()
    results["selected"] = {"products": len(listed), "seconds": seconds, "done": body["action"]["done"]}
    print(f"bulk accept of {len(listed):,} listed: {seconds:.2f} s", flush=True)

    # ~100,000 by filter: the min_score whose unreviewed candidates number args.by_filter.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.score FROM annotation_suggestion s JOIN annotation_product p ON p.id = s.product_id "
            "WHERE s.tag_id = %s AND s.model_version_id = (SELECT id FROM annotation_modelversion WHERE is_active) "
            "AND p.review_status = 'unreviewed' ORDER BY s.score DESC OFFSET %s LIMIT 1",
            [frequent, args.by_filter - 1],
        )
        row = cursor.fetchone()
    min_score = float(row[0]) if row else 0.0
    started = time.perf_counter()
    response = client.post(
        f"/api/v1/tags/{frequent}/bulk-review/",
        {"accept_filter": {"min_score": min_score, "status": "unreviewed"}},
        format="json",
    )
    if response.status_code not in (200, 202):
        raise BenchError(f"bulk accept by filter: {response.status_code} {response.content[:300]!r}")
    job = response.json()["action"]["id"]
    request_s = time.perf_counter() - started
    if response.status_code == 202:
        bulk_action_run(job)
    seconds = time.perf_counter() - started
    action = BulkAction.objects.get(pk=job)
    if action.status != JobStatus.SUCCEEDED:
        raise BenchError(f"bulk action {job} ended {action.status}: {action.error}")
    events = ReviewEvent.objects.filter(bulk_action=action).count()
    results["by_filter"] = {
        "min_score": min_score,
        "total": action.total,
        "done": action.done,
        "skipped": action.skipped,
        "events": events,
        "queued": response.status_code == 202,
        "request_s": request_s,
        "seconds": seconds,
        "per_s": action.done / seconds if seconds else None,
    }
    print(f"bulk accept by filter: {action.done:,} in {seconds:.1f} s", flush=True)
    # The grid right after clearing: the decided products leave the unreviewed view (one probe each).
    name = "frequent, filtered, after the by-filter accept"
    figures = measure_pages(client, frequent, FILTERED, args.pages)
    figures["targeted"] = False
    figures["candidates"] = candidate_count(tag=tag, filters=CandidateFilter(**_filter_kwargs(FILTERED)))
    results["pages"][name] = figures
    print(f"page {name}: p95 {figures['p95_ms']:.1f} ms", flush=True)
    if not args.skip_undo:
        started = time.perf_counter()
        response = client.post(f"/api/v1/bulk-actions/{job}/undo/")
        undo = response.json()["action"]["id"]
        if response.status_code == 202:
            bulk_action_run(undo)
        undone = BulkAction.objects.get(pk=undo)
        results["undo"] = {
            "done": undone.done,
            "skipped": undone.skipped,
            "seconds": time.perf_counter() - started,
        }
        print(f"undo: {undone.done:,} in {results['undo']['seconds']:.1f} s", flush=True)
    return results


def _filter_kwargs(params: dict) -> dict:
    from annotation.selectors.bulk import category_parse

    kwargs: dict = {}
    if "min_score" in params:
        kwargs["min_score"] = float(params["min_score"])
    if "max_score" in params:
        kwargs["max_score"] = float(params["max_score"])
    if "status" in params:
        kwargs["status"] = params["status"]
    if "category" in params:
        kwargs["category"] = category_parse(params["category"])
    if "q" in params:
        kwargs["text"] = params["q"]
    return kwargs


def readme_section(results: dict, args) -> str:
    catalog = results["catalog"]
    load = os.getloadavg()
    lines = [
        "",
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores {platform.machine()}, PostgreSQL on the "
        f"same machine, which was shared with other work (load average {load[0]:.1f} at the end):",
        "",
        "```",
        "nice -n 10 .venv/bin/python bench/bulk_bench.py"
        + (f" --products {args.products}" if args.products != 1_000_000 else ""),
        "```",
        "",
        f"{catalog['products']:,} products, {catalog['tags']} tags (500 suggestible), {catalog['suggestions']:,} "
        f"suggestions (20 per product), {catalog['reviewed']:,} products reviewed with {catalog['approved_tags']:,} "
        f"approved tags; loaded in {catalog['load_s']:.0f} s (suggestions {catalog['suggestion_s']:.0f} s, "
        f"indexes {catalog['index_s']:.0f} s, VACUUM ANALYZE {catalog['analyze_s']:.0f} s).",
        "",
        "| candidate page (REST, 100 rows) | candidates | requests | deepest page | p50 ms | p95 ms | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, f in results["pages"].items():
        target = f"p95 < {TARGET_PAGE_P95_MS:.0f} ms" if f["targeted"] else "—"
        lines.append(
            f"| {name} | {f['candidates']:,} | {f['requests']} | {f['deepest_page']} | {f['p50_ms']:.1f} | "
            f"{f['p95_ms']:.1f} | {target} |"
        )
    sel, flt = results["selected"], results["by_filter"]
    lines += [
        "",
        "Filtered = `min_score=0.3&max_score=0.8&status=unreviewed&category=Fashion`. Each page is one range of "
        "`suggestion_tag_score_idx (tag, model_version, score, product) INCLUDE (selected)`, read from the cursor "
        "on, joined to its 100 products; the category filter relies on the expression statistics migration 0006 "
        "creates (without them PostgreSQL reads every product of the category and sorts). The text filter has no "
        "index (a substring of title or brand): the page walks the tag's candidates until 100 match, so its time "
        "grows as the text gets rarer; it has no target here.",
        "",
        "| bulk decision | products | seconds | target |",
        "|---|---:|---:|---|",
        f"| accept, listed (`accept`: external ids, in the request) | {sel['done']:,} | {sel['seconds']:.2f} | < {TARGET_SELECTED_S:.0f} s |",
        f"| accept by filter (`min_score={flt['min_score']}`, unreviewed; a job, run here) | {flt['done']:,} | "
        f"{flt['seconds']:.1f} | < {TARGET_FILTER_S:.0f} s |",
    ]
    if "undo" in results:
        lines.append(
            f"| undo of the by-filter accept (a job) | {results['undo']['done']:,} | {results['undo']['seconds']:.1f} | — |"
        )
    lines += [
        "",
        f'Count before "select all with score >= 0.9" ({results["count_above"]:,} products): '
        f"{results['count_above_ms']:.0f} ms; precision bands of the frequent tag: {results['bands_ms']:.0f} ms "
        "(the grid loads them after the page and caches them for 60 s or until the next bulk action on the tag). "
        "A bulk decision writes, per product, its event and tags by COPY and stamps the product's "
        "`tags_updated_at` (the export's incremental key), in transactions of 2,000 products. "
        f"Peak RSS of the bench process: {results['peak_rss_mb']:.0f} MB (target < {TARGET_RSS_MB:.0f} MB).",
        "",
        "Missed: " + ("; ".join(results["missed"]) if results["missed"] else "none."),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
