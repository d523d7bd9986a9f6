"""Dashboard speed at scale: 1,000,000 products and 100,000 reviews in a throwaway PostgreSQL database.

    .venv/bin/python bench/dashboard_bench.py [--products 1000000] [--reviews 100000] [--keep]

Creates ``tagstudio_bench_dashboard`` (dropped first if left over, and again at the end unless
``--keep``), migrates it, COPY-loads a synthetic catalog — products, a 2,000-tag taxonomy, approved
tags, 100,000 review events with their JSON audit fields, 20 model versions with metrics and a per-tag
table, and stored suggestions of the active version for every product — then times, with Django's
cache emptied before each run, every dashboard query and the full ``/dashboard/`` render (charts
included) through Django's test client. The suspicious-labels fragment, which the page loads after it
is shown, is timed separately.

Targets: /dashboard/ renders in under 300 ms (median of the cold runs), and so does the suspicious
fragment. Prints a table, rewrites the ``dashboard`` section of bench/README.md, exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import (  # bench/ is on sys.path when a bench runs as a script
    BENCH_POSTGRES_URL,
    PRODUCT_DATA_COLUMNS,
    bench_database_name,
    copy_lines,
    database_create,
    database_drop,
    database_url,
    django_setup,
)
from readme_section import replace_section

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DB_NAME = bench_database_name("dashboard")
DATABASE_URL = database_url(BENCH_POSTGRES_URL, DB_NAME)
README_PATH = Path(__file__).resolve().parent / "README.md"
README_SECTION = "dashboard"
README_HEADING = "## Dashboard (`bench/dashboard_bench.py`)"
TARGET_MS = 300.0


def log(message: str) -> None:
    print(f"[dashboard-bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- synthetic data ---------------------------------------------------------------------------------

N_TAGS = 2000
N_ROOTS = 40
N_OPERATORS = 8
N_VERSIONS = 20
REVIEW_DAYS = 60  # reviews spread over two months: half of them fall in the dashboard's 30-day window
TAGGED_EXTRA_SHARE = 0.1  # products whose tags came from the import (besides the reviewed ones)
SUSPICIOUS_SHARE = 0.01  # tagged products planted with a label the model strongly disagrees with
SHOWN_PER_CARD = 20  # suggestions listed on a review card (the tagger's top-k)


NULL = r"\N"  # COPY's text-format NULL


def _ts(value: dt.datetime) -> str:
    return value.isoformat()


def load_data(*, products: int, reviews: int, suggestions_per_product: int, seed: int) -> dict[str, int]:
    """Fill the migrated database; returns row counts. The active version is the newest."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.roles import OPERATOR
    from annotation.services.users import user_create

    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    users = [
        user_create(username=f"operator{i}", password="bench-pass-123", role=OPERATOR, validate=False)[0].pk
        for i in range(N_OPERATORS)
    ]
    counts: dict[str, int] = {}
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        # A bulk load of consistent data: skip the deferred FK trigger queue (millions of rows).
        cursor.execute("SET session_replication_role = replica")

        # Taxonomy: 40 roots, every other tag under an earlier one.
        tag_names = [f"tag {i:04d}" for i in range(N_TAGS)]
        parents = [None if i < N_ROOTS else rng.randrange(0, i) + 1 for i in range(N_TAGS)]
        counts["tags"] = copy_lines(
            cursor,
            "annotation_tag",
            (
                "id",
                "name",
                "normalized_name",
                "parent_id",
                "description",
                "is_active",
                "created_at",
                "updated_at",
            ),
            (
                f"{i + 1}\t{name.title()}\t{name}\t{parents[i] if parents[i] else NULL}\t\tt\t{_ts(now)}\t{_ts(now)}"
                for i, name in enumerate(tag_names)
            ),
        )
        cursor.execute("SELECT setval('annotation_tag_id_seq', %s)", [N_TAGS])

        # Model versions: one every few days, growing training sets, the newest active.
        versions = []
        for v in range(N_VERSIONS):
            created = now - dt.timedelta(days=REVIEW_DAYS * (N_VERSIONS - v) / N_VERSIONS)
            f1 = 0.45 + 0.35 * (v + 1) / N_VERSIONS + rng.uniform(-0.02, 0.02)
            metrics = {
                "micro_f1": round(f1, 4),
                "p@1": round(min(0.99, f1 + 0.1), 4),
                "p@5": round(f1 / 3, 4),
            }
            if v == N_VERSIONS - 1:
                metrics["per_tag"] = {
                    name.title(): {
                        "precision": rng.random(),
                        "recall": rng.random(),
                        "f1": rng.random(),
                        "support": rng.randrange(0, 400),
                    }
                    for name in tag_names
                }
            versions.append(
                (v + 1, f"bench-v{v + 1:02d}", created, metrics, int(reviews * (v + 1) / N_VERSIONS))
            )
        cursor.executemany(
            "INSERT INTO annotation_modelversion (id, version, state, is_active, artifact_path, tagger, base_model,"
            " device, config, metrics, train_size, valid_size, data_fingerprint, created_at) VALUES"
            " (%s, %s, 'ready', %s, '', 'default', '', 'cpu', '{}', %s, %s, %s, '', %s)",
            [
                (vid, name, vid == N_VERSIONS, json.dumps(metrics), size, size // 5, created)
                for vid, name, created, metrics, size in versions
            ],
        )
        active_version = N_VERSIONS

        # Products: every tenth reviewed (reviews spread over the catalog), some more tagged by import.
        reviewed_every = max(1, products // max(1, reviews))
        reviewed_ids = [pid for pid in range(1, products + 1) if pid % reviewed_every == 0][:reviews]
        reviewed = set(reviewed_ids)
        imported = {
            pid for pid in range(1, products + 1) if pid not in reviewed and rng.random() < TAGGED_EXTRA_SHARE
        }
        review_time = {
            pid: now - dt.timedelta(seconds=rng.uniform(0, REVIEW_DAYS * 86400)) for pid in reviewed_ids
        }
        reviewer = {pid: rng.choice(users) for pid in reviewed_ids}
        claimed = set(rng.sample(range(1, products + 1), k=min(products, 40)))
        claim_until = now + dt.timedelta(minutes=5)

        def product_lines() -> Iterator[str]:
            for pid in range(1, products + 1):
                status = "reviewed" if pid in reviewed else "unreviewed"
                tagged_at = review_time.get(pid) or (now - dt.timedelta(days=90) if pid in imported else None)
                claim = (
                    f"{users[pid % N_OPERATORS]}\t{_ts(claim_until)}" if pid in claimed else f"{NULL}\t{NULL}"
                )
                yield (
                    f"{pid}\tSKU-{pid:08d}\tProduct number {pid} in the bench catalog\tA description of product"
                    f" {pid}, long enough to look like a catalog row.\tBrand {pid % 500}\t[]\t{{}}\ten\t\t"
                    f"{pid:064x}\t{status}\t{rng.random():.6f}\tf\t{active_version}\t{claim}\t{_ts(now)}\t"
                    f"{_ts(now)}\t{_ts(tagged_at) if tagged_at else NULL}"
                )

        log(f"COPY {products:,} products")
        counts["products"] = copy_lines(
            cursor,
            "annotation_product",
            (
                "id",
                *PRODUCT_DATA_COLUMNS,
                "review_status",
                "priority",
                "needs_suggestion",
                "suggested_by_id",
                "claimed_by_id",
                "claim_expires_at",
                "created_at",
                "updated_at",
                "tags_updated_at",
            ),
            product_lines(),
        )
        cursor.execute("SELECT setval('annotation_product_id_seq', %s)", [products])

        # Approved tags (2-3 per tagged product) and the planted disagreements.
        approved: dict[int, list[int]] = {}
        for pid in sorted(reviewed | imported):
            approved[pid] = rng.sample(range(1, N_TAGS + 1), k=rng.choice((2, 3)))
        suspicious = set(rng.sample(sorted(approved), k=int(len(approved) * SUSPICIOUS_SHARE)))

        def product_tag_lines() -> Iterator[str]:
            for pid, tags in approved.items():
                source = "review" if pid in reviewed else "import"
                when = _ts(review_time.get(pid) or now - dt.timedelta(days=90))
                user = str(reviewer[pid]) if pid in reviewed else NULL
                for tag in tags:
                    yield f"{pid}\t{tag}\t{source}\t{user}\t{NULL}\t{when}"

        log(f"COPY approved tags of {len(approved):,} products")
        counts["product_tags"] = copy_lines(
            cursor,
            "annotation_producttag",
            ("product_id", "tag_id", "source", "approved_by_id", "model_version_id", "approved_at"),
            product_tag_lines(),
        )

        # Suggestions of the active version for every product: approved tags score high except on the
        # planted products (one approved tag near 0, one missing tag near 1).
        def suggestion_lines() -> Iterator[str]:
            created = _ts(now)
            for pid in range(1, products + 1):
                tags = approved.get(pid, [])
                scored: dict[int, float] = {}
                for tag in tags:
                    scored[tag] = rng.uniform(0.5, 0.95)
                if pid in suspicious:
                    scored[tags[0]] = 0.01
                    scored[(tags[0] % N_TAGS) + 1 if (tags[0] % N_TAGS) + 1 not in tags else 1] = 0.97
                while len(scored) < suggestions_per_product:
                    tag = rng.randrange(1, N_TAGS + 1)
                    if tag not in scored and tag not in tags:
                        scored[tag] = rng.uniform(0.001, 0.6)
                for tag, score in scored.items():
                    yield f"{pid}\t{tag}\t{active_version}\t{score:.4f}\t{'t' if score >= 0.5 else 'f'}\t{created}"

        log(f"COPY suggestions ({suggestions_per_product} or more per product)")
        counts["suggestions"] = copy_lines(
            cursor,
            "annotation_suggestion",
            ("product_id", "tag_id", "model_version_id", "score", "selected", "created_at"),
            suggestion_lines(),
        )

        # Review events: one submit per reviewed product, with the audit JSON the review card writes.
        version_times = [(created, vid) for vid, _, created, _, _ in versions]

        def version_at(when: dt.datetime) -> int | None:
            current = None
            for created, vid in version_times:
                if created <= when:
                    current = vid
            return current

        def review_lines() -> Iterator[str]:
            """Audit rows shaped as annotation.services.reviews writes them (tag names, top-20 ``shown``)."""
            for pid in reviewed_ids:
                tags = approved[pid]
                final = [tag_names[t - 1].title() for t in tags]
                # The model found most approved tags; sometimes one was added by hand, sometimes the model
                # selected one more that the operator dropped.
                found = tags[:-1] if rng.random() < 0.3 else tags
                extra_selected = [rng.randrange(1, N_TAGS + 1)] if rng.random() < 0.3 else []
                others = [
                    rng.randrange(1, N_TAGS + 1)
                    for _ in range(SHOWN_PER_CARD - len(found) - len(extra_selected))
                ]
                shown = [
                    {
                        "tag": tag_names[t - 1].title(),
                        "tag_id": t,
                        "score": round(rng.uniform(0.5, 1.0) if selected else rng.uniform(0.0, 0.5), 6),
                        "selected": selected,
                        "model_version": f"bench-v{version_at(review_time[pid]) or 0:02d}",
                    }
                    for t, selected in [(t, True) for t in found + extra_selected]
                    + [(t, False) for t in others]
                ]
                shown_names = {row["tag"] for row in shown}
                when = review_time[pid]
                version = version_at(when)
                yield "\t".join(
                    (
                        str(pid),
                        str(reviewer[pid]),
                        "submit",
                        _ts(when),
                        str(version) if version else NULL,
                        json.dumps(shown),
                        "[]",
                        json.dumps(final),
                        json.dumps([row["tag"] for row in shown if row["tag"] in final]),
                        json.dumps([row["tag"] for row in shown if row["tag"] not in final]),
                        json.dumps([name for name in final if name not in shown_names]),
                        "[]",
                        "",  # submit_digest: only a claimed REST/HTML submit records one
                    )
                )

        log(f"COPY {len(reviewed_ids):,} review events")
        counts["review_events"] = copy_lines(
            cursor,
            "annotation_reviewevent",
            (
                "product_id",
                "user_id",
                "action",
                "created_at",
                "model_version_id",
                "shown",
                "previous_tags",
                "final_tags",
                "accepted",
                "rejected",
                "added",
                "removed",
                "submit_digest",
            ),
            review_lines(),
        )
        cursor.execute("SET session_replication_role = DEFAULT")
    log("VACUUM ANALYZE (as autovacuum would after a load)")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    counts["operators"] = get_user_model().objects.count()
    return counts


def table_counts() -> dict[str, int]:
    from django.contrib.auth import get_user_model

    from annotation.models import Product, ProductTag, ReviewEvent, Suggestion, Tag

    return {
        "tags": Tag.objects.count(),
        "products": Product.objects.count(),
        "product_tags": ProductTag.objects.count(),
        "suggestions": Suggestion.objects.count(),
        "review_events": ReviewEvent.objects.count(),
        "operators": get_user_model().objects.count(),
    }


# --- timing -----------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


STEADY = "GET /dashboard/ (steady: sections recomputed, closed days cached)"
COLD = "GET /dashboard/ (cold: empty cache)"
WARM = "GET /dashboard/ (warm: within the section TTL)"
SUSPICIOUS = "GET /dashboard/suspicious/ (recomputed)"
TARGETED = (STEADY,)  # the page with its charts; the suspicious list is loaded after it, cached 5 min


def measure(runs: int) -> dict[str, list[float]]:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import override_settings

    from annotation.selectors import dashboard as sel

    client = Client(SERVER_NAME="localhost")
    client.force_login(get_user_model().objects.get(username="operator0"))

    def page(url: str) -> Callable[[], object]:
        def get() -> object:
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"GET {url} answered {response.status_code}")
            return response

        return get

    dashboard, suspicious = page("/dashboard/"), page("/dashboard/suspicious/")
    checks: dict[str, Callable[[], object]] = {
        "catalog_counts": sel.catalog_counts,
        "review_activity (30 days from SQL)": lambda: sel.review_activity(use_cache=False),
        "review_activity (closed days cached)": sel.review_activity,
        "dashboard_model_section": sel.dashboard_model_section,
        "per_tag_quality (50 worst)": lambda: sel.per_tag_quality(limit=50),
        "suspicious_labels": sel.suspicious_labels,
    }
    results: dict[str, list[float]] = {name: [] for name in [*checks, STEADY, COLD, WARM, SUSPICIOUS]}
    dashboard(), suspicious()  # first requests of the process (template compilation, session): not timed
    for _ in range(runs):
        cache.clear()
        sel.review_activity()  # fills the closed-day cache the "closed days cached" line reads
        for name, fn in checks.items():
            results[name].append(timed(fn))
        with override_settings(DASHBOARD_CACHE_SECONDS=0):
            # Steady: the short-lived sections expired (TTL 0 here: recomputed on every request); the
            # long-lived entries — closed days' review figures (a week), the active version's per-tag
            # table (an hour; a ready version's metrics never change) — filled by an earlier request.
            cache.clear()
            dashboard()
            results[STEADY].append(timed(dashboard))
            results[SUSPICIOUS].append(timed(suspicious))  # TTL 0: recomputed
            cache.clear()
            results[COLD].append(timed(dashboard))
        dashboard()
        results[WARM].append(timed(dashboard))
    return results


def write_readme(section: str) -> None:
    replace_section(README_SECTION, README_HEADING, section, README_PATH)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--suggestions-per-product", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database for inspection")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a database kept by an earlier --keep run (no reload)"
    )
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    args = parser.parse_args(argv)
    if args.reviews > args.products:
        parser.error("--reviews cannot exceed --products (one review per reviewed product)")

    if not args.reuse:
        database_create(DATABASE_URL)
    try:
        broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/15"  # never contacted here
        django_setup(
            DATABASE_URL, CELERY_BROKER_URL=broker, SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0"
        )
        from django.core.management import call_command

        if args.reuse:
            counts, load_s = table_counts(), 0.0
            log("reusing the loaded database: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        else:
            log(f"migrating {DB_NAME}")
            call_command("migrate", verbosity=0)
            start = time.perf_counter()
            counts = load_data(
                products=args.products,
                reviews=args.reviews,
                suggestions_per_product=args.suggestions_per_product,
                seed=args.seed,
            )
            load_s = time.perf_counter() - start
            log(f"loaded in {load_s:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        results = measure(args.runs)
    finally:
        if not (args.keep or args.reuse):
            database_drop(DATABASE_URL)
            log(f"dropped {DB_NAME}")

    from annotation.selectors import dashboard as sel

    rows = []
    missed = []
    for name, values in results.items():
        median = statistics.median(values)
        target = TARGET_MS if name in TARGETED else None
        ok = target is None or median < target
        if not ok:
            missed.append(name)
        rows.append((name, min(values), median, max(values), target, ok))
    header = f"{'measure':<42} {'min ms':>8} {'median':>8} {'max':>8}  target"
    print(header)
    for name, lo, med, hi, target, ok in rows:
        verdict = "" if target is None else (f"< {target:.0f} ms {'ok' if ok else 'MISSED'}")
        print(f"{name:<42} {lo:8.1f} {med:8.1f} {hi:8.1f}  {verdict}")

    table = "\n".join(
        f"| {name} | {lo:.1f} | {med:.1f} | {hi:.1f} | "
        + ("—" if target is None else f"< {target:.0f} ms: {'met' if ok else '**missed**'}")
        + " |"
        for name, lo, med, hi, target, ok in rows
    )
    loaded = "by an earlier run (--keep, then --reuse)" if args.reuse else f"in {load_s:.0f} s"
    load = os.getloadavg()
    section = f"""
Command: `nice -n 10 .venv/bin/python bench/dashboard_bench.py --products {args.products} --reviews {args.reviews}
--suggestions-per-product {args.suggestions_per_product} --runs {args.runs}` ({time.strftime("%Y-%m-%d")},
development machine, {os.cpu_count()} CPU cores, PostgreSQL on localhost, machine shared with other work:
load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} when the timing ended).

Data, COPY-loaded into the throwaway database `{DB_NAME}` {loaded}: {counts["products"]:,} products,
{counts["review_events"]:,} review events (over {REVIEW_DAYS} days, with shown/accepted/rejected/added JSON),
{counts["product_tags"]:,} approved tags, {counts["suggestions"]:,} stored suggestions of the active version,
{counts["tags"]:,} tags, {N_VERSIONS} model versions (per-tag table of {N_TAGS:,} tags on the active one),
{N_OPERATORS} operators. {args.runs} runs, milliseconds; PostgreSQL's buffers are warm, as on a running server.

| measure | min | median | max | target (median) |
|---|---|---|---|---|
{table}

How the page stays fast: catalog totals use PostgreSQL's row estimate above 200,000 products (no COUNT(*)
over the catalog; reviewed and claimed counts are exact index counts); each dashboard section is cached
for `DASHBOARD_CACHE_SECONDS` (60 s); the review figures of closed days (before today) are cached for a
week, so a recompute reads only today's review events — reading the JSON audit of every event in the
30-day window is what the "30 days from SQL" and "cold" lines cost. "Steady" is a request after the
section TTL expired (sections recomputed from SQL, closed days from the cache): the render users get.
The suspicious-labels scan covers the {sel.SUSPICIOUS_SCAN_PRODUCTS:,} most recently tagged products; htmx loads it
after the page is shown and it is cached for 5 minutes per active version (no target of its own).
"""
    if not args.no_readme:
        write_readme(section)
        log(f"wrote the dashboard section of {README_PATH}")
    if missed:
        print("MISSED: " + ", ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
