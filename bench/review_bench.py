"""Review latency with 1,000,000 products: claim-next, render-card and submit under 20 concurrent reviewers.

1. Creates a throwaway database (``tagstudio_bench_review``) and migrates it.
2. Bulk-loads it with COPY: ``--products`` products (default 1,000,000; English and Chinese titles, seeded),
   a 3-level taxonomy with aliases, an active model version whose suggestions (6 per product) cover the
   ``--suggested`` highest-priority products, and ``--reviewed-share`` of the catalog already reviewed
   with approved tags. Then VACUUM ANALYZE, as autovacuum would after a load.
3. Starts a real gunicorn (the Dockerfile's worker model: ``--workers 3 --threads 4`` gthread, DEBUG off)
   on 127.0.0.1 and creates ``--reviewers`` operators (API token + a browser session each).
4. Each simulated reviewer runs ``--rounds`` rounds of the loop below, reading each card for
   ``--think`` seconds on average (default 1 s, uniform 0.5x-1.5x: several times busier than a person,
   who takes 5-20 s per product; ``--think 0`` is a back-to-back stress test):
   - claim-next:  ``POST /api/v1/review/next/`` (token auth) — claims the next product;
   - render-card: ``GET /review/`` (session) — the review page with the card of the claimed product,
     suggestion chips, the operator's counts and the queue size;
   - submit:      ``POST /api/v1/products/{external_id}/review/`` — the suggestions >= 0.5 plus one
     hand-picked tag (by alias every third round), so the hierarchy closure and alias paths run; it
     sends the card's ``claim`` token, so the claim check (row lock + token) is measured too.
   Every ``--list-every`` rounds it also loads product-list pages: the first page, a page 500,000 rows
   deep (keyset cursor), reviewed products by update time, a tag filter and two text searches.
5. **Server time** is gunicorn's own per-request time (access-log field ``%(D)s``: from the worker
   reading the request to the response written; queueing in the listen backlog excluded). Client-side
   latency on loopback is reported next to it. Target: p95 server time < 50 ms for claim-next,
   render-card and submit. The list pages are reported without a target.
6. Checks the outcome (one audit event per submit, no product claimed twice), stops gunicorn, drops
   the database (``--keep-db`` keeps it) and writes the figures between the ``review`` markers of
   ``bench/README.md``. Exit status 1 when a target is missed.

The learning loop's auto-retrain is switched off in the server (``RETRAIN_AFTER_REVIEWS=0``): a
training job is not part of review latency, and the bench has no worker.

    nice -n 10 .venv/bin/python bench/review_bench.py
    .venv/bin/python bench/review_bench.py --products 100000 --rounds 10 --no-write-readme
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, readme_section, also when loaded by path
from _common import (  # noqa: E402
    PRODUCT_DATA_COLUMNS,
    SERVER_SETTINGS,
    BenchError,
    GunicornServer,
    bench_database_name,
    copy_lines,
    database_create,
    database_drop,
    database_execute,
    database_url,
    django_env,
    django_migrate,
    django_setup,
    gunicorn_start,
)
from readme_section import replace_section  # noqa: E402

README_PATH = Path(__file__).resolve().parent / "README.md"
BENCH_DB = bench_database_name("review")
TARGET_P95_MS = 50.0
TARGETED = ("claim-next", "render-card", "submit")
# The review page's own Server-Timing entry: explaining the card's chips, part of render-card's time.
EXPLAIN_ROW = "render-card: explain"
PASSWORD = "bench-reviewer-passphrase-1"
# The last field is the Server-Timing header set by timed_application (the app's own wall and CPU time).
ACCESS_LOG_FORMAT = "%(m)s|%(U)s|%(q)s|%(s)s|%(D)s|%({server-timing}o)s"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


# --- Database ---------------------------------------------------------------------------------------------


def server_env(bench_url: str, var_dir: Path) -> dict[str, str]:
    env = django_env(
        bench_url,
        **SERVER_SETTINGS,
        TAGSTUDIO_VAR_DIR=str(var_dir),
        MODEL_DIR=str(var_dir / "models"),
        STATIC_ROOT=str(var_dir / "static"),
        RETRAIN_AFTER_REVIEWS="0",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


# --- Data -------------------------------------------------------------------------------------------------

# fmt: off
EN_WORDS = [
    "cotton", "linen", "wool", "silk", "denim", "leather", "suede", "canvas", "knit", "jersey",
    "fleece", "velvet", "satin", "chiffon", "red", "blue", "green", "black", "white", "grey", "navy",
    "beige", "pink", "yellow", "striped", "floral", "plaid", "solid", "slim", "relaxed", "oversized",
    "cropped", "long", "short", "midi", "maxi", "mini", "classic", "vintage", "modern", "casual",
    "formal", "summer", "winter", "autumn", "spring", "organic", "recycled", "waterproof", "breathable",
    "stretch", "lightweight", "warm", "soft", "premium", "essential", "everyday"
]
EN_NOUNS = [
    "dress", "shirt", "t-shirt", "blouse", "jeans", "trousers", "shorts", "skirt", "jacket", "coat",
    "hoodie", "sweater", "cardigan", "sneakers", "boots", "sandals", "loafers", "heels", "backpack",
    "tote", "handbag", "wallet", "belt", "scarf", "hat", "cap", "socks"
]
ZH_WORDS = [
    "纯棉", "亚麻", "羊毛", "真丝", "牛仔", "真皮", "红色", "蓝色", "黑色", "白色", "条纹", "碎花", "修身", "宽松", "复古", "休闲",
    "夏季", "冬季", "透气", "轻薄"
]
ZH_NOUNS = [
    "连衣裙", "衬衫", "T恤", "牛仔裤", "短裤", "半身裙", "夹克", "大衣", "卫衣", "毛衣", "运动鞋", "靴子", "凉鞋", "背包", "手提包", "钱包"
]
# fmt: on
BRANDS = [f"Brand{i:03d}" for i in range(400)]


def load_catalog(bench_url: str, *, products: int, suggested: int, reviewed_share: float, seed: int) -> dict:
    """Taxonomy, model version, products, suggestions and approved tags, all through COPY."""
    import psycopg

    rng = random.Random(seed)
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    stamp = now.isoformat()
    # Small tables through the ORM (robust to new columns): 8 roots > 40 groups > 400 leaves, each leaf
    # with an alias, and the active model version.
    from annotation.models import ModelState, ModelVersion, Tag, TagAlias

    roots = [Tag.objects.create(name=f"Department {i}", normalized_name=f"department {i}") for i in range(8)]
    groups = [
        Tag.objects.create(name=f"Group {i}", normalized_name=f"group {i}", parent=roots[i % len(roots)])
        for i in range(40)
    ]
    leaf_tags = Tag.objects.bulk_create(
        [
            Tag(name=f"Leaf tag {i}", normalized_name=f"leaf tag {i}", parent=groups[i % len(groups)])
            for i in range(400)
        ]
    )
    TagAlias.objects.bulk_create(
        [
            TagAlias(tag=tag, name=f"alias {i}", normalized_name=f"alias {i}")
            for i, tag in enumerate(leaf_tags)
        ]
    )
    version_id = ModelVersion.objects.create(
        version="bench-v1", state=ModelState.READY, is_active=True, activated_at=now
    ).id
    leaves = [tag.name for tag in leaf_tags]
    leaf_ids = [tag.id for tag in leaf_tags]
    names = roots + groups + leaf_tags
    with psycopg.connect(bench_url) as conn, conn.cursor() as cursor:
        # Products: priority > 0 for the `suggested` products that have suggestions (the learning loop
        # ranks those first), 0 for the rest; `reviewed_share` of the others already reviewed.
        reviewed_ids: list[int] = []

        def product_rows():
            for pid in range(1, products + 1):
                zh = pid % 10 == 0
                words = ZH_WORDS if zh else EN_WORDS
                nouns = ZH_NOUNS if zh else EN_NOUNS
                sep = "" if zh else " "
                title = sep.join(rng.sample(words, 3) + [rng.choice(nouns)])
                description = sep.join(rng.choice(words) for _ in range(40))
                has_suggestions = pid <= suggested
                reviewed = not has_suggestions and rng.random() < reviewed_share
                if reviewed:
                    reviewed_ids.append(pid)
                priority = round(rng.random(), 6) if has_suggestions else 0.0
                category = json.dumps(["Fashion", rng.choice(nouns)], ensure_ascii=False)
                attributes = json.dumps(
                    {"color": rng.choice(words), "size": rng.choice("SML")}, ensure_ascii=False
                )
                yield (
                    f"{pid}\tBENCH-{pid:07d}\t{title}\t{description}\t{rng.choice(BRANDS)}\t{category}\t{attributes}\t"
                    f"{'zh' if zh else 'en'}\t\t{pid:064x}\t{'reviewed' if reviewed else 'unreviewed'}\t{priority}\t"
                    f"false\t{version_id if has_suggestions else chr(92) + 'N'}\t{stamp}\t{stamp}\t"
                    f"{stamp if reviewed else chr(92) + 'N'}"
                )

        copy_lines(
            cursor,
            "annotation_product",
            [
                "id", *PRODUCT_DATA_COLUMNS, "review_status", "priority", "needs_suggestion", "suggested_by_id",
                "created_at", "updated_at", "tags_updated_at",
            ],
            product_rows(),
        )  # fmt: skip
        conn.execute("SELECT setval('annotation_product_id_seq', (SELECT max(id) FROM annotation_product))")

        def suggestion_rows():
            for pid in range(1, suggested + 1):
                for tag_id in rng.sample(leaf_ids, 6):
                    score = round(rng.random(), 4)
                    yield f"{pid}\t{tag_id}\t{version_id}\t{score}\t{'true' if score >= 0.5 else 'false'}\t{stamp}"

        n_suggestions = copy_lines(
            cursor,
            "annotation_suggestion",
            ["product_id", "tag_id", "model_version_id", "score", "selected", "created_at"],
            suggestion_rows(),
        )

        def approved_rows():
            for pid in reviewed_ids:
                for tag_id in rng.sample(leaf_ids, 2):
                    yield f"{pid}\t{tag_id}\timport\t{stamp}"

        n_approved = copy_lines(
            cursor,
            "annotation_producttag",
            ["product_id", "tag_id", "source", "approved_at"],
            approved_rows(),
        )
        conn.commit()
    load_s = time.perf_counter() - started
    database_execute(bench_url, "VACUUM ANALYZE")
    return {
        "products": products,
        "suggested": suggested,
        "suggestions": n_suggestions,
        "reviewed": len(reviewed_ids),
        "approved_tags": n_approved,
        "tags": len(names),
        "load_s": load_s,
        "analyze_s": time.perf_counter() - started - load_s,
        "leaf_names": leaves,
        "version_id": version_id,
    }


def deep_cursor(depth: int) -> str:
    """A product-list cursor ``depth`` rows into the unreviewed-by-priority list (as a user paging that far)."""
    from annotation.models import Product
    from annotation.selectors.catalog import encode_cursor

    product = Product.objects.filter(review_status="unreviewed").order_by("-priority", "id")[depth]
    return encode_cursor("priority", product)


def model_artifact_train(bench_url: str, model_dir: Path, *, tagger: str, limit: int) -> dict:
    """A real artifact for the active version ``bench-v1`` (the catalog's tags on ``limit`` reviewed
    products), so every card explains its chips with ``mlcore.explain`` as a deployment would."""
    import psycopg

    from mlcore.training import TrainConfig, train
    from mlcore.types import ProductRecord

    started = time.perf_counter()
    with psycopg.connect(bench_url) as conn:
        rows = conn.execute(
            "SELECT p.id, p.title, p.description, p.brand, p.lang, array_agg(t.name ORDER BY t.name) "
            "FROM annotation_product p JOIN annotation_producttag pt ON pt.product_id = p.id "
            "JOIN annotation_tag t ON t.id = pt.tag_id GROUP BY p.id ORDER BY p.id LIMIT %s",
            [limit],
        ).fetchall()
    records = [
        ProductRecord(
            id=str(pk), title=title, description=description, brand=brand, lang=lang, tags=tuple(tags)
        )
        for pk, title, description, brand, lang, tags in rows
    ]
    train(records, model_dir / "bench-v1", TrainConfig(tagger=tagger, refit_on_all=True))
    return {"tagger": tagger, "records": len(records), "train_s": time.perf_counter() - started}


def users_create(count: int) -> list[tuple[str, str]]:
    from annotation.roles import OPERATOR
    from annotation.services.users import user_create

    return [
        (
            f"bench{i:02d}",
            user_create(username=f"bench{i:02d}", password=PASSWORD, role=OPERATOR, validate=False)[1],
        )
        for i in range(count)
    ]


# --- Server -----------------------------------------------------------------------------------------------


_django_application = None


def timed_application(environ, start_response):
    """The project's WSGI application, plus a ``Server-Timing`` header: the app's wall time and the CPU
    time of the thread that served the request (gunicorn loads this as ``review_bench:timed_application``).

    CPU time is what the request cost this Python process, whatever else the machine was doing; the
    PostgreSQL side of the request is not in it (it is in the wall times).
    """
    global _django_application
    if _django_application is None:
        from tagstudio.wsgi import application

        _django_application = application
    wall, cpu = time.perf_counter(), time.thread_time()

    def timed_start_response(status, headers, exc_info=None):
        app_ms = (time.perf_counter() - wall) * 1000
        cpu_ms = (time.thread_time() - cpu) * 1000
        # One header: the app's own entries (the review page's "explain") after the bench's.
        own = [value for name, value in headers if name.lower() == "server-timing"]
        headers = [(name, value) for name, value in headers if name.lower() != "server-timing"]
        timing = ", ".join([f"app;dur={app_ms:.2f}, cpu;dur={cpu_ms:.2f}", *own])
        headers.append(("Server-Timing", timing))
        return start_response(status, headers, exc_info)

    return _django_application(environ, timed_start_response)


def gunicorn_review_start(
    env: dict[str, str], *, workers: int, threads: int, access_log: Path, niceness: int
) -> GunicornServer:
    return gunicorn_start(
        "review_bench:timed_application",
        env=env,
        niceness=niceness,
        options=[
            "--pythonpath", str(Path(__file__).parent),
            "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread" if threads > 1 else "sync",
            "--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT,
            "--log-level", "warning", "--timeout", "60", "--keep-alive", "30",
        ],
    )  # fmt: skip


# --- Reviewers --------------------------------------------------------------------------------------------


class Reviewer:
    def __init__(self, base: str, username: str, token: str, rng: random.Random, think_s: float) -> None:
        import requests

        self.think_s = think_s
        self.base = base
        self.username = username
        self.rng = rng
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Token {token}"
        self.browser = requests.Session()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.claimed: list[str] = []
        self.submits = 0
        self.errors: list[str] = []

    def login(self) -> None:
        page = self.browser.get(f"{self.base}/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = self.browser.post(
            f"{self.base}/login/",
            data={"username": self.username, "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.base}/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302:
            raise BenchError(f"{self.username}: login answered {response.status_code}")

    def _timed(self, name: str, call, *args, **kwargs):
        started = time.perf_counter()
        response = call(*args, timeout=60, **kwargs)
        self.latency[name].append((time.perf_counter() - started) * 1000)
        return response

    def review_round(self, index: int, leaf_names: list[str]) -> bool:
        claim = self._timed("claim-next", self.api.post, f"{self.base}/api/v1/review/next/")
        if claim.status_code == 204:
            return False
        if claim.status_code != 200:
            self.errors.append(f"claim {claim.status_code}: {claim.text[:200]}")
            return False
        card = claim.json()
        external_id = card["product"]["external_id"]
        self.claimed.append(external_id)
        page = self._timed("render-card", self.browser.get, f"{self.base}/review/")
        if page.status_code != 200 or f'data-product="{external_id}"' not in page.text:
            self.errors.append(f"render {page.status_code}: card of {external_id} not shown")
        if self.think_s:
            time.sleep(self.rng.uniform(0.5, 1.5) * self.think_s)  # reading the card
        tags = [s["tag"] for s in card["suggestions"] if s["score"] >= 0.5]
        extra = self.rng.randrange(len(leaf_names))
        tags.append(f"alias {extra}" if index % 3 == 0 else leaf_names[extra])
        # The card's claim token makes the submit idempotent and refuses it if the product changed since.
        body = {"tags": tags, "claim": card["claim"]}
        submit = self._timed(
            "submit", self.api.post, f"{self.base}/api/v1/products/{external_id}/review/", json=body
        )
        if submit.status_code != 200:
            self.errors.append(f"submit {submit.status_code}: {submit.text[:200]}")
        else:
            self.submits += 1
        return True

    def list_pages(self, deep: str, leaf_names: list[str]) -> None:
        word = self.rng.choice(EN_WORDS)
        queries = {
            "list: first page": {"status": "unreviewed", "sort": "priority"},
            "list: page 500,000 rows deep": {"status": "unreviewed", "sort": "priority", "cursor": deep},
            "list: reviewed by update time": {"status": "reviewed", "sort": "updated"},
            "list: tag filter": {"status": "all", "tag": self.rng.choice(leaf_names)},
            "list: text, common word": {"status": "unreviewed", "q": word},
            "list: text, no match": {"status": "unreviewed", "q": "zzqx-no-such-title"},
        }
        for name, params in queries.items():
            response = self._timed(
                name, self.browser.get, f"{self.base}/products/?{urlencode({**params, '_b': name})}"
            )
            if response.status_code != 200:
                self.errors.append(f"{name} {response.status_code}")


def run_reviewers(
    base: str, accounts, *, rounds: int, list_every: int, leaf_names, deep: str, seed: int, think_s: float
):
    reviewers = [
        Reviewer(base, name, token, random.Random(seed + i), think_s)
        for i, (name, token) in enumerate(accounts)
    ]
    for reviewer in reviewers:
        reviewer.login()
    barrier = threading.Barrier(len(reviewers))
    failures: list[BaseException] = []

    def work(reviewer: Reviewer) -> None:
        try:
            barrier.wait()
            for index in range(rounds):
                if not reviewer.review_round(index, leaf_names):
                    break
                if list_every and index % list_every == list_every - 1:
                    reviewer.list_pages(deep, leaf_names)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise BenchError(f"a reviewer failed: {failures[0]!r}")
    return reviewers, wall


# --- Figures ----------------------------------------------------------------------------------------------


def classify(method: str, path: str, query: str) -> str | None:
    if method == "POST" and path == "/api/v1/review/next/":
        return "claim-next"
    if method == "GET" and path == "/review/":
        return "render-card"
    if method == "POST" and path.startswith("/api/v1/products/") and path.endswith("/review/"):
        return "submit"
    if method == "GET" and path == "/products/":
        match = re.search(r"(?:^|&)_b=([^&]+)", query)
        if match:
            from urllib.parse import unquote_plus

            return unquote_plus(match.group(1))
    return None


def server_times(
    access_log: Path, offset: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, int]]:
    """Per operation: gunicorn's request times, the app's CPU times (ms), and the status counts."""
    times: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, int] = defaultdict(int)
    with access_log.open() as handle:
        handle.seek(offset)
        for line in handle:
            parts = line.rstrip("\n").split("|")
            if len(parts) != 6:
                continue
            method, path, query, status, micros, timing = parts
            name = classify(method, path, query)
            if name is None:
                continue
            times[name].append(int(micros) / 1000)
            match = re.search(r"cpu;dur=([0-9.]+)", timing)
            if match:
                cpu[name].append(float(match.group(1)))
            match = re.search(r"(?<![-\w])explain;dur=([0-9.]+)", timing)
            if match:  # the part of the card's server time spent explaining its chips (no target of its own);
                # both the review page and the REST card (claim-next) explain, each in its own row
                times[f"{name}: explain"].append(float(match.group(1)))
            statuses[f"{name} {status}"] += 1
    return times, cpu, statuses


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        value = values[0] if values else float("nan")
        return {"n": len(values), "p50": value, "p95": value, "p99": value, "max": value}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def readme_write(section: str) -> None:
    replace_section("review", None, section, README_PATH)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument(
        "--suggested", type=int, default=50_000, help="products with suggestions (queue head)"
    )
    parser.add_argument("--reviewed-share", type=float, default=0.3)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=40, help="claim/render/submit rounds per reviewer")
    parser.add_argument(
        "--list-every", type=int, default=20, help="product-list pages every N rounds (0: never)"
    )
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean seconds a reviewer reads a card before submitting (uniform 0.5x-1.5x; 0: none, a stress test)",
    )
    parser.add_argument(
        "--server-nice",
        type=int,
        default=0,
        help="niceness of the gunicorn processes (the loader may run under `nice`; the short measured phase "
        "should not be starved by it)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--explain-tagger",
        default="lexical",
        help="tagger trained for the active version, so cards explain their chips ('none': no artifact, "
        "cards without reasons)",
    )
    parser.add_argument(
        "--explain-train",
        type=int,
        default=5000,
        help="reviewed products the version's artifact is trained on",
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write-readme", action="store_true")
    args = parser.parse_args()
    if args.suggested > args.products:
        parser.error("--suggested cannot exceed --products")

    var_dir = Path(tempfile.mkdtemp(prefix="tagstudio-review-bench-"))
    access_log = var_dir / "access.log"
    bench_url = database_create(database_url(args.database_url, BENCH_DB))
    server = None
    try:
        env = server_env(bench_url, var_dir)
        print(f"database {BENCH_DB}: migrating", flush=True)
        django_migrate(env)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=REPO_ROOT,
            env=env,
            check=True,
        )
        # This process uses the ORM for the small tables, the users and the checks.
        django_setup(bench_url, TAGSTUDIO_VAR_DIR=env["TAGSTUDIO_VAR_DIR"], MODEL_DIR=env["MODEL_DIR"])
        print(f"loading {args.products:,} products with COPY", flush=True)
        catalog = load_catalog(
            bench_url,
            products=args.products,
            suggested=args.suggested,
            reviewed_share=args.reviewed_share,
            seed=args.seed,
        )
        print(
            f"loaded in {catalog['load_s']:.1f} s (+ VACUUM ANALYZE {catalog['analyze_s']:.1f} s): "
            f"{catalog['suggestions']:,} suggestions, {catalog['reviewed']:,} reviewed, "
            f"{catalog['approved_tags']:,} approved tags",
            flush=True,
        )
        artifact = None
        if args.explain_tagger != "none":
            artifact = model_artifact_train(
                bench_url, Path(env["MODEL_DIR"]), tagger=args.explain_tagger, limit=args.explain_train
            )
            print(
                f"trained the {artifact['tagger']} tagger on {artifact['records']:,} products for bench-v1 "
                f"in {artifact['train_s']:.1f} s (cards explain their chips with it)",
                flush=True,
            )
        deep = deep_cursor(min(500_000, args.products - args.products // 3))
        accounts = users_create(args.reviewers)
        server = gunicorn_review_start(
            env, workers=args.workers, threads=args.threads, access_log=access_log, niceness=args.server_nice
        )
        base = server.base_url
        print(f"gunicorn on {base}: {args.workers} workers x {args.threads} threads", flush=True)
        # Warm-up outside the measurement: each worker process imports and connects on first use.
        warm = __import__("requests").Session()
        for _ in range(args.workers * 4):
            warm.get(f"{base}/login/", timeout=30)
        time.sleep(0.5)
        offset = access_log.stat().st_size
        load_before = os.getloadavg()[0]
        reviewers, wall = run_reviewers(
            base,
            accounts,
            rounds=args.rounds,
            list_every=args.list_every,
            leaf_names=catalog["leaf_names"],
            deep=deep,
            seed=args.seed,
            think_s=args.think,
        )
        load_after = os.getloadavg()[0]
        time.sleep(1.0)  # let the access log flush
        server.stop()
        server = None
        times, cpu_times, statuses = server_times(access_log, offset)
    finally:
        if server is not None:
            server.stop()

    # Outcome checks.
    errors = [f"{r.username}: {e}" for r in reviewers for e in r.errors]
    claimed = [external_id for r in reviewers for external_id in r.claimed]
    submits = sum(r.submits for r in reviewers)
    from annotation.models import ReviewEvent

    events = ReviewEvent.objects.filter(action="submit").count()
    if not args.keep_db:
        database_drop(bench_url)

    client: dict[str, list[float]] = defaultdict(list)
    for reviewer in reviewers:
        for name, values in reviewer.latency.items():
            client[name].extend(values)
    order = list(TARGETED) + sorted(name for name in times if name not in TARGETED)
    rows = []
    missed = []
    for name in order:
        server = percentiles(times.get(name, []))
        loop = percentiles(client.get(name, []))
        app_cpu = percentiles(cpu_times.get(name, []))
        target = name in TARGETED
        ok = server["p95"] < TARGET_P95_MS if target else None
        if target and not ok:
            missed.append(f"{name} p95 {server['p95']:.1f} ms")
        rows.append((name, server, loop, app_cpu, ok))

    requests_total = sum(len(v) for v in times.values())
    header = (
        f"Measured {dt.date.today().isoformat()} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} CPUs, PostgreSQL on the same host), shared with other work.\n"
        f"Command: `nice -n 10 .venv/bin/python bench/review_bench.py"
        f"{'' if args.products == 1_000_000 else f' --products {args.products}'}"
        f"{'' if args.rounds == 40 else f' --rounds {args.rounds}'}"
        f"{'' if args.think == 1.0 else f' --think {args.think:g}'}`\n\n"
        f"- Catalog: {catalog['products']:,} products loaded with COPY in {catalog['load_s']:.0f} s "
        f"({catalog['suggested']:,} with 6 suggestions each from the active version, "
        f"{catalog['reviewed']:,} already reviewed with {catalog['approved_tags']:,} approved tags; "
        f"{catalog['tags']} tags in 3 levels, every leaf with an alias).\n"
        f"- Explanations: "
        + (
            f"the active version is a real {artifact['tagger']} artifact trained on {artifact['records']:,} "
            f"reviewed products; every card explains its chips (`mlcore.explain`), its cost is the row "
            f"`{EXPLAIN_ROW}` (the review page's own `Server-Timing` entry, part of render-card; the REST "
            f"card explains its suggestions too, row `claim-next: explain`; cards shown "
            f"while a worker still loads the model, in the background, have no reasons and no entry).\n"
            if artifact
            else "none (`--explain-tagger none`): cards without reasons.\n"
        )
        + f"- Load: {len(reviewers)} simulated reviewers over HTTP, {args.rounds} rounds each, "
        f"{'back to back (no think time)' if not args.think else f'reading each card {args.think:g} s on average'}, "
        f"against gunicorn ({args.workers} workers x {args.threads} threads, gthread, DEBUG off, nice "
        f"{args.server_nice}) on 127.0.0.1; {requests_total:,} measured requests in {wall:.1f} s "
        f"({submits / wall:.1f} reviews/s). Machine load average (1 min) before/after the measured phase: "
        f"{load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs (other engineers' jobs included).\n"
        f"- Server time = gunicorn's per-request time (access-log `%(D)s`: request read to response written, "
        f"listen-backlog wait excluded); client = latency seen by the simulated reviewer on loopback; "
        f"app CPU = CPU time of the gunicorn thread that served the request (a `Server-Timing` header added by "
        f"the bench's WSGI wrapper; PostgreSQL's side excluded): what a request costs, whatever else runs.\n"
        f"- Checks: {submits:,} submits, {events:,} submit audit events, {len(claimed):,} claims, "
        f"{len(set(claimed)):,} distinct products, {len(errors)} request errors.\n\n"
        "| operation | n | server p50 ms | server p95 ms | server p99 ms | client p50 ms | client p95 ms "
        "| app CPU p50 ms | app CPU p95 ms | target |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    table = "".join(
        f"| {name} | {server['n']} | {server['p50']:.1f} | {server['p95']:.1f} | {server['p99']:.1f} | "
        f"{loop['p50']:.1f} | {loop['p95']:.1f} | {app_cpu['p50']:.1f} | {app_cpu['p95']:.1f} | "
        f"{'—' if ok is None else ('p95 < 50 ms: met' if ok else '**p95 < 50 ms: MISSED**')} |\n"
        for name, server, loop, app_cpu, ok in rows
    )
    section = header + table
    print(section)
    print("statuses:", dict(statuses))

    problems = list(missed)
    if events != submits:
        problems.append(f"{submits} submits but {events} audit events")
    if len(set(claimed)) != len(claimed):
        problems.append("a product was claimed twice")
    if errors:
        problems.append(f"{len(errors)} request errors, first: {errors[0]}")
    if not args.no_write_readme:
        readme_write(section + ("" if not problems else "\nProblems: " + "; ".join(problems) + "\n"))
        print(f"wrote {README_PATH.relative_to(REPO_ROOT)}")
    if problems:
        print("TARGET MISSED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
