"""Catalog search latency with 1,000,000 products x 500 tags: a product-list filter with its count.

1. Creates a throwaway database (``tagstudio_bench_search``) and migrates it.
2. Bulk-loads it with COPY (secondary indexes and the suggestion table's constraints dropped during the
   load and rebuilt after it, as a restore would): ``--products`` products (default 1,000,000) with
   3-level category paths (8 x 6 x 5), 500 tags (20 groups > 480 leaves), an active model version, and
   ``--per-product`` suggestions for **every** product (default 8: 8,000,000 rows), tags drawn with a
   Zipf-like popularity so that some tags are frequent (~100,000+ products) and many rare; a suggestion is
   selected from score 0.5. ``--reviewed-share`` of the products are reviewed, their approved tags being
   the model's selected tags with each decision flipped with probability ``--flip`` (the disagreements).
   Then VACUUM ANALYZE, as autovacuum would after a load.
3. Measures ``GET /api/v1/products/`` in this process through Django's full request stack (DRF view,
   filter set, keyset page of 50, serializer, the count; APIClient, no HTTP server), ``--repeats`` times
   per filter with a different tag / range / category / word each time, after one warm-up pass:
   - ``suggested tag + score range``: ``suggested_tag`` (a frequent or a rare tag), a score range,
     ``ordering=-score``;
   - ``disagreement``: ``disagreement=true&status=reviewed``, and ``disagreement=true`` on one tag;
   - ``category prefix``: two levels (``Dept 3 > Cat 2``);
   - ``status + text``: ``status=unreviewed&q=<word>``.
   Each request's wall time is the figure; target p95 < 300 ms for every filter. Also reported: the
   count returned and whether it was an estimate.
4. Drops the database (``--keep-db`` keeps it) and writes the figures between the ``search`` markers of
   ``bench/README.md``. Exit status 1 when a target is missed.

The suggestion index the suggested-tag filter reads, (tag, model_version, score, product), comes from
migration ``0007_bulk_candidates``; when the migrated schema lacks it, the bench
creates the same index and says so in its output.

    nice -n 10 .venv/bin/python bench/search_bench.py
    .venv/bin/python bench/search_bench.py --products 100000 --repeats 10 --no-write-readme
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PRODUCT_DATA_COLUMNS,
    BenchError,
    bench_database_name,
    copy_lines,
    database_create,
    database_drop,
    database_execute,
    database_url,
    django_env,
    django_migrate,
    django_setup,
)
from readme_section import replace_section  # noqa: E402

README_PATH = Path(__file__).resolve().parent / "README.md"
BENCH_DB = bench_database_name("search")
TARGET_P95_MS = 300.0
BULK_INDEX = "suggestion_tag_score_idx"
BULK_INDEX_SQL = (
    f"CREATE INDEX {BULK_INDEX} ON annotation_suggestion (tag_id, model_version_id, score, product_id) "
    "INCLUDE (selected)"
)

# fmt: off
WORDS = [
    "cotton", "linen", "wool", "silk", "denim", "leather", "suede", "canvas", "knit", "jersey", "fleece",
    "velvet", "satin", "red", "blue", "green", "black", "white", "grey", "navy", "beige", "pink", "striped",
    "floral", "plaid", "slim", "relaxed", "oversized", "cropped", "long", "short", "midi", "maxi", "classic",
    "vintage", "modern", "casual", "formal", "summer", "winter", "organic", "recycled", "waterproof",
]
NOUNS = [
    "dress", "shirt", "t-shirt", "blouse", "jeans", "trousers", "shorts", "skirt", "jacket", "coat", "hoodie",
    "sweater", "cardigan", "sneakers", "boots", "sandals", "loafers", "backpack", "tote", "wallet", "scarf",
]
# fmt: on
TEXT_QUERIES = ["linen", "velvet", "sneakers", "oversized", "waterproof", "cardigan", "floral", "denim"]


def load_catalog(bench_url: str, *, products: int, per_product: int, reviewed_share: float, flip: float,
                 seed: int) -> dict:  # fmt: skip
    """Taxonomy and model version through the ORM; products, suggestions, approved tags through COPY."""
    import psycopg

    from annotation.models import ModelState, ModelVersion, Tag

    rng = random.Random(seed)
    started = time.perf_counter()
    stamp = dt.datetime.now(dt.UTC)
    groups = [Tag.objects.create(name=f"Group {i}", normalized_name=f"group {i}") for i in range(20)]
    leaves = Tag.objects.bulk_create(
        Tag(name=f"Leaf {i}", normalized_name=f"leaf {i}", parent=groups[i % 20]) for i in range(480)
    )
    tag_ids = [t.id for t in groups + leaves]
    version = ModelVersion.objects.create(
        version="bench-v1", state=ModelState.READY, is_active=True, activated_at=stamp
    )
    # Zipf-like popularity: tag i is drawn with weight 1 / (i + 1) ** 0.8 (a few tags on 100,000+ products).
    weights = [1 / (i + 1) ** 0.8 for i in range(len(tag_ids))]
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    popularity: dict[int, int] = defaultdict(int)
    reviewed = 0
    with psycopg.connect(bench_url) as conn, conn.cursor() as cursor:
        dropped = _secondary_drop(
            cursor, ["annotation_product", "annotation_suggestion", "annotation_producttag"]
        )
        conn.commit()
        approved_lines: list[str] = []
        suggestion_file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed below)

        def product_rows():
            nonlocal reviewed
            for pid in range(1, products + 1):
                title = " ".join(rng.sample(WORDS, 3) + [rng.choice(NOUNS)])
                description = " ".join(rng.choice(WORDS) for _ in range(12))
                path = [f"Dept {rng.randrange(8)}", f"Cat {rng.randrange(6)}", f"Sub {rng.randrange(5)}"]
                is_reviewed = rng.random() < reviewed_share
                reviewed += is_reviewed
                chosen = set()
                while len(chosen) < per_product:
                    chosen.add(tag_ids[_bisect(cumulative, rng.random() * total)])
                for tag_id in chosen:
                    score = round(rng.random(), 4)
                    selected = score >= 0.5
                    popularity[tag_id] += 1
                    suggestion_file.write(
                        f"{pid}\t{tag_id}\t{version.id}\t{score}\t{'t' if selected else 'f'}\t{stamp.isoformat()}\n"
                    )
                    if is_reviewed and (selected != (rng.random() < flip)):
                        approved_lines.append(f"{pid}\t{tag_id}\treview\t{stamp.isoformat()}")
                updated = (stamp - dt.timedelta(seconds=rng.randrange(90 * 86400))).isoformat()
                yield (
                    f"{pid}\tBENCH-{pid:07d}\t{title}\t{description}\tBrand{rng.randrange(400):03d}\t"
                    f"{json.dumps(path)}\t{{}}\ten\t\t{pid:064x}\t"
                    f"{'reviewed' if is_reviewed else 'unreviewed'}\t"
                    f"{0.0 if is_reviewed else round(rng.random(), 6)}\tfalse\t{version.id}\t{updated}\t{updated}"
                )

        copy_lines(
            cursor,
            "annotation_product",
            ["id", *PRODUCT_DATA_COLUMNS, "review_status", "priority", "needs_suggestion", "suggested_by_id",
             "created_at", "updated_at"],
            product_rows(),
        )  # fmt: skip
        conn.execute("SELECT setval('annotation_product_id_seq', (SELECT max(id) FROM annotation_product))")
        suggestion_file.seek(0)
        n_suggestions = copy_lines(
            cursor,
            "annotation_suggestion",
            ["product_id", "tag_id", "model_version_id", "score", "selected", "created_at"],
            (line.rstrip("\n") for line in suggestion_file),
        )
        suggestion_file.close()
        n_approved = copy_lines(
            cursor, "annotation_producttag", ["product_id", "tag_id", "source", "approved_at"], approved_lines
        )
        conn.commit()
        load_s = time.perf_counter() - started
        index_started = time.perf_counter()
        for statement in dropped:
            cursor.execute(statement)
        conn.commit()
        created_bulk_index = False
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [BULK_INDEX])
        if cursor.fetchone() is None:
            cursor.execute(BULK_INDEX_SQL)
            conn.commit()
            created_bulk_index = True
        index_s = time.perf_counter() - index_started
    analyze_started = time.perf_counter()
    database_execute(bench_url, "VACUUM ANALYZE")
    by_popularity = sorted(popularity, key=popularity.get, reverse=True)
    return {
        "products": products,
        "tags": len(tag_ids),
        "suggestions": n_suggestions,
        "reviewed": reviewed,
        "approved_tags": n_approved,
        "load_s": load_s,
        "index_s": index_s,
        "analyze_s": time.perf_counter() - analyze_started,
        "created_bulk_index": created_bulk_index,
        "frequent": [(_tag_name(t), popularity[t]) for t in by_popularity[:4]],
        "rare": [(_tag_name(t), popularity[t]) for t in by_popularity[-4:]],
    }


def _tag_name(tag_id: int) -> str:
    from annotation.models import Tag

    return Tag.objects.get(pk=tag_id).name


def _bisect(cumulative: list[float], value: float) -> int:
    lo, hi = 0, len(cumulative) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _secondary_drop(cursor, tables: list[str]) -> list[str]:
    """Drop the tables' non-primary-key indexes and unique/foreign-key constraints; the statements that
    recreate them (constraints after indexes, as pg_dump orders them)."""
    recreate_indexes, recreate_constraints = [], []
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f')",
        [tables],
    )
    for table, name, definition in cursor.fetchall():
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        recreate_constraints.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary",
        [tables],
    )
    for name, definition in cursor.fetchall():
        cursor.execute(f"DROP INDEX {name}")
        recreate_indexes.append(definition)
    return recreate_indexes + recreate_constraints


# --- Measuring --------------------------------------------------------------------------------------------


def filter_queries(catalog: dict, repeats: int, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    frequent = [name for name, _n in catalog["frequent"]]
    rare = [name for name, _n in catalog["rare"]]

    def score_range() -> dict:
        low = round(rng.uniform(0.2, 0.6), 2)
        return {"min_score": low, "max_score": round(min(1.0, low + rng.uniform(0.1, 0.4)), 2)}

    return {
        "suggested tag (frequent) + score range": [
            {"suggested_tag": rng.choice(frequent), **score_range(), "ordering": "-score"} for _ in range(repeats)
        ],
        "suggested tag (rare) + score range": [
            {"suggested_tag": rng.choice(rare), **score_range(), "ordering": "-score"} for _ in range(repeats)
        ],
        "disagreement (reviewed)": [{"disagreement": "true", "status": "reviewed"} for _ in range(repeats)],
        "disagreement on one tag": [
            {"disagreement": "true", "suggested_tag": rng.choice(frequent + rare)} for _ in range(repeats)
        ],
        "category prefix (2 levels)": [
            {"category": f"Dept {rng.randrange(8)} > Cat {rng.randrange(6)}"} for _ in range(repeats)
        ],
        "status + text": [{"status": "unreviewed", "q": rng.choice(TEXT_QUERIES)} for _ in range(repeats)],
    }  # fmt: skip


def measure(queries: dict[str, list[dict]]) -> dict[str, dict]:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from annotation.roles import OPERATOR
    from annotation.services.users import user_create

    name = "bench-operator"
    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        user_create(username=name, password="bench-operator-passphrase-1", role=OPERATOR, validate=False)
        user = get_user_model().objects.get(username=name)
    client = APIClient()
    client.force_authenticate(user)
    results: dict[str, dict] = {}
    for name, params_list in queries.items():
        for params in params_list[:2]:  # warm-up: the first reads of the tables' pages
            response = client.get("/api/v1/products/", params)
            if response.status_code != 200:
                raise BenchError(
                    f"{name}: {params} answered {response.status_code}: {response.content[:300]!r}"
                )
        times, counts = [], []
        for params in params_list:
            started = time.perf_counter()
            response = client.get("/api/v1/products/", params)
            times.append((time.perf_counter() - started) * 1000)
            body = response.json()
            counts.append((body["count"], body["count_is_estimate"], len(body["results"])))
        results[name] = {
            **percentiles(times),
            "counts": counts,
            "example": params_list[0],
            "exact": exact_count(params_list[0]),
        }
        row = results[name]
        print(
            f"{name:<40} p50 {row['p50']:7.1f} ms  p95 {row['p95']:7.1f} ms  max {row['max']:7.1f} ms  "
            f"count e.g. {counts[0][0]:,}{' (estimate)' if counts[0][1] else ''} (exact {row['exact']:,})",
            flush=True,
        )
    return results


def exact_count(params: dict) -> int:
    """The true count of the first example's filter (no bound, no time budget): what an estimate missed."""
    from annotation.api.catalog.views import ProductFilter
    from annotation.selectors.catalog import product_list_queryset
    from annotation.selectors.search import search_count

    filterset = ProductFilter({k: str(v) for k, v in params.items()}, queryset=product_list_queryset())
    if not filterset.is_valid():
        raise BenchError(f"{params}: {filterset.errors}")
    return search_count(filterset.qs, limit=10**12, budget_ms=0).value


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        value = values[0] if values else float("nan")
        return {"n": len(values), "p50": value, "p95": value, "max": value}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": cuts[49], "p95": cuts[94], "max": max(values)}


def readme_section(catalog: dict, results: dict, args: argparse.Namespace, loadavg: tuple) -> str:
    lines = [
        f"Command: `{args.command}` on {platform.node() or 'the development machine'} "
        f"({os.cpu_count()} CPU cores; PostgreSQL on the same machine). {args.notes}".rstrip(),
        "",
        f"Data: {catalog['products']:,} products x {catalog['tags']} tags, {catalog['suggestions']:,} "
        f"suggestions of the active version ({args.per_product} per product, every product), "
        f"{catalog['reviewed']:,} reviewed products with {catalog['approved_tags']:,} approved tags "
        f"(the model's selected tags, each decision flipped with probability {args.flip}). Loaded by COPY in "
        f"{catalog['load_s']:.0f} s, indexes built in {catalog['index_s']:.0f} s, VACUUM ANALYZE "
        f"{catalog['analyze_s']:.0f} s. Most frequent tags: "
        + ", ".join(f"{n} ({c:,})" for n, c in catalog["frequent"])
        + "; rarest: "
        + ", ".join(f"{n} ({c:,})" for n, c in catalog["rare"])
        + ".",
        "",
        f"`GET /api/v1/products/` (page of 50 + the filter's count) through Django's request stack in the "
        f"bench process (APIClient, no HTTP server), {args.repeats} requests per filter with varying "
        "parameters after two warm-up requests. Load average before measuring: "
        + ", ".join(f"{x:.2f}" for x in loadavg)
        + ".",
        "",
        "| filter | example | p50 ms | p95 ms | max ms | count answered (example) | exact count | "
        "target p95 < 300 ms |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for name, row in results.items():
        count, estimate, _rows = row["counts"][0]
        example = "&".join(f"{k}={v}" for k, v in row["example"].items())
        lines.append(
            f"| {name} | `{example}` | {row['p50']:.1f} | {row['p95']:.1f} | {row['max']:.1f} | "
            f"{'about ' if estimate else ''}{count:,}{' (estimate)' if estimate else ''} | {row['exact']:,} | "
            f"{'met' if row['p95'] < TARGET_P95_MS else 'MISSED'} |"
        )
    lines += [
        "",
        "Counts (`annotation.selectors.search.search_count`): exact when PostgreSQL prices the bounded count "
        "(at most 100,001 rows) at no more than `COUNT_COST_MAX` and it finishes within `COUNT_BUDGET_MS`; "
        "otherwise an estimate from a fixed block sample of the product table (or the planner's estimate when "
        'that is far above 100,000), labelled `count_is_estimate: true` and shown as "about N". The exact '
        "count column is the same filter counted without bound or budget, once, after the timings.",
    ]
    if catalog["created_bulk_index"]:
        lines += [
            "",
            f"The schema measured lacked `{BULK_INDEX}` (migration 0007_bulk_candidates); "
            "the bench created the same index.",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--per-product", type=int, default=8, help="suggestions per product")
    parser.add_argument("--reviewed-share", type=float, default=0.2)
    parser.add_argument("--flip", type=float, default=0.05, help="chance an approved decision disagrees")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--notes", default="", help="a sentence for the README (e.g. the machine's load)")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse-db", action="store_true", help="measure a database kept by --keep-db")
    parser.add_argument("--no-write-readme", action="store_true")
    args = parser.parse_args()
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    args.command = shlex.join(
        [
            *(["nice", "-n", str(niceness)] if niceness else []),
            ".venv/bin/python",
            "bench/search_bench.py",
            *sys.argv[1:],
        ]
    )

    bench_url = database_url(args.database_url, BENCH_DB)
    var_dir = Path(tempfile.mkdtemp(prefix="tagstudio-search-bench-"))
    settings = {
        "DEBUG": "0",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "API_RATE_LIMIT_USER": "100000/min",
        "LOG_LEVEL": "WARNING",
        "TAGSTUDIO_VAR_DIR": str(var_dir),
    }
    catalog_file = var_dir / "catalog.json"
    try:
        if args.reuse_db:
            django_setup(bench_url, **settings)
            kept = Path(tempfile.gettempdir()) / "tagstudio_search_bench_catalog.json"
            catalog = json.loads(kept.read_text())
        else:
            database_create(bench_url)
            print(f"database {BENCH_DB}: migrating", flush=True)
            django_migrate(django_env(bench_url, **settings))
            django_setup(bench_url, **settings)
            print(
                f"loading {args.products:,} products x {args.per_product} suggestions with COPY", flush=True
            )
            catalog = load_catalog(
                bench_url,
                products=args.products,
                per_product=args.per_product,
                reviewed_share=args.reviewed_share,
                flip=args.flip,
                seed=args.seed,
            )
            (Path(tempfile.gettempdir()) / "tagstudio_search_bench_catalog.json").write_text(
                json.dumps(catalog)
            )
            print(
                f"loaded in {catalog['load_s']:.0f} s, indexes {catalog['index_s']:.0f} s, "
                f"analyze {catalog['analyze_s']:.0f} s; frequent {catalog['frequent']}, rare {catalog['rare']}"
                + (
                    f"; created {BULK_INDEX} (absent from this schema)"
                    if catalog["created_bulk_index"]
                    else ""
                ),
                flush=True,
            )
        loadavg = os.getloadavg()
        results = measure(filter_queries(catalog, args.repeats, args.seed))
        missed = [name for name, row in results.items() if not row["p95"] < TARGET_P95_MS]
        print(f"target p95 < {TARGET_P95_MS:.0f} ms: " + ("met" if not missed else f"MISSED for {missed}"))
        if not args.no_write_readme:
            replace_section(
                "search", "## Catalog search (`bench/search_bench.py`)",
                readme_section(catalog, results, args, loadavg), README_PATH,
            )  # fmt: skip
        catalog_file.unlink(missing_ok=True)
        return 1 if missed else 0
    finally:
        if not args.keep_db:
            database_drop(bench_url)


if __name__ == "__main__":
    sys.exit(main())
