"""Effort benchmark (issue 17, section 3): human actions per product, and the catalog's accuracy, on a real stack.

A simulated operator works through the REST API of a real stack: gunicorn, one Celery worker (queues
``default`` and ``train``, a Redis broker) and PostgreSQL in a throwaway database
(``tagstudio_bench_effort``, dropped after each set unless ``--keep-db``; the model artifacts, worker log and
uploaded files go to a temporary directory, removed unless ``--keep-files``: with both, each version's
``validation_scores.json`` / ``out_of_fold_scores.json`` and the database can be replayed offline, as the
auto-approval analysis in bench/README.md did). Per shared set
(``<data-dir>/<set>/dev.jsonl``) and per mode (``review``: auto-approval off, the default; ``auto``:
auto-approval at a target precision of 0.98; ``random``, on request: as ``review`` with the queue in random
order, the control for what the queue's order does to the effort):

1. **setup, as a team starts**: the taxonomy with every tag name of the set imported from a CSV
   (``manage.py import_taxonomy``, ``name`` column); a catalog file with a seed of ``--seed-size`` (100)
   products carrying their tags and a pool of up to ``--pool`` (5,000) untagged ones (seeded draws)
   uploaded through ``POST /api/v1/imports/`` (without ``category_path`` unless ``--keep-category-path``:
   on four sets its nodes are the tags); the seed confirmed through the review endpoint (so it
   leaves the queue); a first training through ``POST /api/v1/models/train/``, and its suggestion
   refresh and queue ranking. In the ``auto`` mode ``PUT /api/v1/auto-approval/`` switches auto-approval
   on first; where that endpoint answers 404 the mode is reported as "n/a (auto-approval not available)".
2. **reviews**: ``--reviews`` (2,000) products from ``POST /api/v1/review/next/``, each answered with its
   gold tags and the card's ``claim`` token on ``POST /api/v1/products/{external_id}/review/``. The
   server retrains after every ``RETRAIN_AFTER_REVIEWS`` submits (set to ``--window``, 200 = the
   setting's default); after each window of ``--window`` reviews the operator waits until that training,
   the suggestion refresh and the queue ranking are done (the broker's queues empty, nothing in flight):
   a person needs ~30 minutes for 200 products, longer than the loop takes.
3. **actions per card** (``card_effort``): 1 submit + 1 per pre-checked wrong chip + 1 per right chip
   shown but not pre-checked + 1 per gold tag not shown on the card (typed). Which chips are shown and
   pre-checked mirrors the HTML card (``annotation.selectors.review.review_card`` and ``_chip_visible``):
   approved and model-selected chips are always shown, plus the best unselected suggestions scoring at
   least ``CARD_MIN_SCORE`` (0.05), at most ``CARD_MAX_UNSELECTED`` (10) of them; the rest sit behind
   "more" and count as typed. Approved chips start checked, and the model's selected chips scoring at
   least ``REVIEW_PRECHECK_MIN_SCORE`` (or its best selected chip when none does) too when
   ``REVIEW_PRECHECK_SELECTED`` is on (the default). The *typing baseline* is what the same card costs
   with no suggestions: every gold tag typed + submit. Each count is checked against the server: a card
   counted at 1 action must be one the server reports ``edited: false`` for, and the reverse.
4. **catalog micro-F1** of the pool after each window's retraining: reviewed products carry their
   approved tags (the gold tags just submitted), the others the active model's selected tags
   (``catalog_micro_f1``). In the ``auto`` mode also: how many (product, tag) pairs were auto-approved,
   their precision against the gold tags, and the realised precision the app's audit reports.

5. **catalog accuracy per human action** (``accuracy_per_action_lines``): the actions spent so far against the
   catalog micro-F1 after each window, per queue order, with the actions each order needs to reach the
   accuracy all of them reach, and what typing every tag by hand costs to reach it with no model. The
   active-learning queue hands out the products the model most likely got wrong, so its cards cost more
   actions than a random order's; whether they buy more catalog accuracy per action is what this measures.

Targets: median 1 action per product in the last window on at least 4 of 7 sets; catalog micro-F1 with
auto-approval at least 0.97 after 2,000 reviews, with the audit's realised precision at least 0.98, on
at least 3 sets. Exit status 1 when one is missed (or a set failed).

Results are merged per set and mode into ``--json-out`` (default ``bench/figures/effort.json``): a
later run adds or replaces its sets, ``--resume`` skips the (set, mode) pairs already there with the
same configuration, and ``--write-readme`` writes the ``effort`` section of ``bench/README.md`` from it.

    nice -n 10 .venv/bin/python bench/effort_bench.py --sets amazon_uk_toys --write-readme
    nice -n 10 .venv/bin/python bench/effort_bench.py --sets amazon_uk_toys --modes random --write-readme
    .venv/bin/python bench/effort_bench.py --sets amazon_uk_toys --pool 600 --reviews 400 --window 100 \\
        --json-out /tmp/effort-dev.json

Needs ``CELERY_BROKER_URL`` pointing at a Redis database the bench may use (its queues are emptied
first) and the PostgreSQL server of ``BENCH_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, readme_section, also when loaded by path
from _common import (  # noqa: E402
    BENCH_POSTGRES_URL,
    SERVER_SETTINGS,
    BenchError,
    GunicornServer,
    bench_database_name,
    database_create,
    database_drop,
    database_url,
    django_env,
    django_migrate,
    django_setup,
    gunicorn_start,
)
from readme_section import replace_section  # noqa: E402

from annotation.selectors.precheck import prechecked_keys  # noqa: E402  (pure: no Django needed)

README_PATH = Path(__file__).resolve().parent / "README.md"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_JSON = Path(__file__).resolve().parent / "figures" / "effort.json"
CACHE_DIR = REPO_ROOT / ".bench-cache" / "effort"
BENCH_DB = bench_database_name("effort")
# review: auto-approval off, the app's default queue order; auto: auto-approval at AUTO_TARGET_PRECISION;
# random: as review, with the queue in random order (the control for the queue's own effect on the effort).
MODES = ("review", "auto", "random")
DEFAULT_MODES = ("review", "auto")
QUEUE_STRATEGY_PATH = "/api/v1/queue/strategy/"

AUTO_APPROVAL_PATH = "/api/v1/auto-approval/"
AUTO_TARGET_PRECISION = 0.98
NOT_AVAILABLE = "n/a (auto-approval not available)"

TARGET_MEDIAN_ACTIONS = 1.0
TARGET_MEDIAN_SETS = 4
TARGET_CATALOG_F1 = 0.97
TARGET_CATALOG_SETS = 3
TARGET_REALISED_PRECISION = 0.98

PASSWORD = "bench-effort-passphrase-1"
POLL_S = 1.0
SETTLE_POLLS = 3  # consecutive idle polls before the loop counts as settled
SETTLE_TIMEOUT_S = 3600.0


# --------------------------------------------------------------------------------------------------------
# Counting actions on a card (pure functions: tests/bench/test_effort_bench.py)
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CardRule:
    """How the HTML card picks and pre-checks its chips (annotation.selectors.review)."""

    min_score: float
    max_unselected: int
    precheck: bool
    fold: Any  # tag name -> the key the app compares names by (annotation.taxonomy.names.normalize_tag_name)
    precheck_min_score: float = 0.0  # REVIEW_PRECHECK_MIN_SCORE: see annotation.selectors.precheck


@cache
def app_card_rule(precheck: bool = True) -> CardRule:
    """The app's own card rule. Imported here, not at the top: these modules load annotation's models,
    which needs Django set up (the bench does it after reading its arguments; pytest-django in tests)."""
    from annotation.selectors.review import CARD_MAX_UNSELECTED, CARD_MIN_SCORE, precheck_min_score
    from annotation.taxonomy.names import normalize_tag_name

    return CardRule(
        min_score=CARD_MIN_SCORE,
        max_unselected=CARD_MAX_UNSELECTED,
        precheck=precheck,
        fold=normalize_tag_name,
        precheck_min_score=precheck_min_score(),
    )


@dataclasses.dataclass(frozen=True)
class ChipView:
    """One chip as the operator first sees it."""

    key: str  # folded tag name
    visible: bool  # on the card at first sight (False: behind "more")
    checked: bool  # starts checked


def card_chips(card: Mapping[str, Any], rule: CardRule) -> list[ChipView]:
    """The chips of a REST review card (``POST /api/v1/review/next/``), as the HTML card shows them.

    Mirrors ``annotation.selectors.review.review_card``: the suggestions best first (the API's order:
    score desc, then name), each visible when approved or selected, or when it is among the first
    ``max_unselected`` unselected, unapproved suggestions scoring at least ``min_score``; approved tags
    start checked, selected suggestions scoring at least ``precheck_min_score`` (or the best selected one
    when none does) too with pre-checking on (``annotation.selectors.precheck.prechecked_keys``, the app's
    own function); approved tags the shown version did not suggest follow, visible and checked.
    """
    approved = {rule.fold(row["tag"]) for row in card.get("approved_tags") or ()}
    suggestions = sorted(card.get("suggestions") or (), key=lambda s: (-float(s["score"]), s["tag"]))
    starts_checked = prechecked_keys(
        ((rule.fold(s["tag"]), float(s["score"]), bool(s["selected"])) for s in suggestions),
        min_score=rule.precheck_min_score,
    )
    chips = []
    suggested = set()
    unselected_rank = 0
    for suggestion in suggestions:
        key = rule.fold(suggestion["tag"])
        score, selected = float(suggestion["score"]), bool(suggestion["selected"])
        is_approved = key in approved
        visible = (
            is_approved or selected or (score >= rule.min_score and unselected_rank < rule.max_unselected)
        )
        if not (is_approved or selected) and score >= rule.min_score:
            unselected_rank += 1
        chips.append(ChipView(key, visible, is_approved or (rule.precheck and key in starts_checked)))
        suggested.add(key)
    chips += [ChipView(key, True, True) for key in sorted(approved - suggested)]
    return chips


@dataclasses.dataclass(frozen=True)
class CardEffort:
    wrong_checked: int  # pre-checked chips that are not gold: one click each to uncheck
    right_unchecked: int  # gold chips shown but not pre-checked: one click each
    typed: int  # gold tags not shown on the card (absent, or behind "more"): typed
    gold: int  # gold tags of the product

    @property
    def actions(self) -> int:
        return 1 + self.wrong_checked + self.right_unchecked + self.typed

    @property
    def unchanged(self) -> bool:
        """Submitted as the card started (one key)."""
        return self.actions == 1

    @property
    def baseline(self) -> int:
        """The same product without suggestions: every gold tag typed, then submit."""
        return self.gold + 1


def card_effort(card: Mapping[str, Any], gold: Iterable[str], rule: CardRule) -> CardEffort:
    """The actions an operator needs to turn ``card`` into the ``gold`` tags and submit it."""
    gold_keys = {rule.fold(name) for name in gold}
    chips = card_chips(card, rule)
    shown = {chip.key for chip in chips if chip.visible}
    return CardEffort(
        wrong_checked=sum(1 for chip in chips if chip.checked and chip.key not in gold_keys),
        right_unchecked=sum(
            1 for chip in chips if chip.visible and not chip.checked and chip.key in gold_keys
        ),
        typed=len(gold_keys - shown),
        gold=len(gold_keys),
    )


def window_summary(efforts: Sequence[CardEffort]) -> dict[str, Any]:
    """Median and mean actions, the share submitted unchanged and the typing baseline of one window."""
    if not efforts:
        return {"cards": 0}
    actions = [e.actions for e in efforts]
    baseline = [e.baseline for e in efforts]
    return {
        "cards": len(efforts),
        "actions_median": float(statistics.median(actions)),
        "actions_mean": round(statistics.fmean(actions), 3),
        "unchanged_share": round(sum(e.unchanged for e in efforts) / len(efforts), 4),
        "baseline_median": float(statistics.median(baseline)),
        "baseline_mean": round(statistics.fmean(baseline), 3),
        "actions_total": sum(actions),
        "wrong_checked": sum(e.wrong_checked for e in efforts),
        "right_unchecked": sum(e.right_unchecked for e in efforts),
        "typed": sum(e.typed for e in efforts),
    }


def catalog_micro_f1(gold: Mapping[str, Collection[str]], catalog: Mapping[str, Collection[str]]) -> float:
    """Micro-F1 of the catalog's tags against the gold tags over every product of ``gold`` (a product
    missing from ``catalog`` carries no tag). Names must already be folded alike on both sides."""
    from mlcore.metrics import evaluate_tag_sets  # scikit-learn: loaded only by the processes that score

    ids = sorted(gold)
    return float(
        evaluate_tag_sets([gold[i] for i in ids], [catalog.get(i, ()) for i in ids], per_tag=False)[
            "micro_f1"
        ]
    )


def effort_curve(run: Mapping[str, Any]) -> list[tuple[int, float, float]]:
    """(reviews, human actions so far, catalog micro-F1) after each window of a run, window 0 (the seed
    model, no action yet) included."""
    points, total = [], 0.0
    for w in run["windows"]:
        if w.get("cards"):
            # Runs stored before ``actions_total`` existed: the mean is rounded to 3 decimals, close enough.
            total += w.get("actions_total", w["actions_mean"] * w["cards"])
        points.append((w["reviews"], total, w["catalog_f1"]))
    return points


def _first_reaching(pairs: Iterable[tuple[float, float]], level: float) -> float | None:
    """Along ``(x, y)`` pairs in order, the ``y`` where ``x`` first reaches ``level`` (linear between pairs);
    None when it never does."""
    previous = None
    for x, y in pairs:
        if x >= level:
            if previous is None or x <= previous[0]:
                return y
            return previous[1] + (y - previous[1]) * (level - previous[0]) / (x - previous[0])
        previous = (x, y)
    return None


def actions_to_reach(points: Sequence[tuple[int, float, float]], f1: float) -> float | None:
    """Actions after which the catalog micro-F1 of ``effort_curve`` points first reaches ``f1`` (linear between
    windows); None when it never does."""
    return _first_reaching(((value, spent) for _, spent, value in points), f1)


def catalog_at_actions(points: Sequence[tuple[int, float, float]], actions: float) -> float | None:
    """The catalog micro-F1 of ``effort_curve`` points after ``actions`` actions (linear between windows);
    None beyond the run's last window."""
    return _first_reaching(((spent, value) for _, spent, value in points), actions)


def typing_actions_to_reach(f1: float, *, pool: int, typing_mean: float) -> float:
    """Actions to reach a catalog micro-F1 of ``f1`` by typing every tag by hand, no model: the reviewed
    products are right and the rest carry no tag, so precision is 1 and recall the reviewed share ``r`` of
    the pool (in random order), micro-F1 = 2r / (1 + r); ``f1`` takes r = f1 / (2 - f1)."""
    return pool * f1 / (2.0 - f1) * typing_mean


def typing_mean_of(run: Mapping[str, Any]) -> float | None:
    """The typing baseline per product over all of a run's cards."""
    cards = sum(w.get("cards", 0) for w in run["windows"])
    if not cards:
        return None
    return sum(w["baseline_mean"] * w["cards"] for w in run["windows"] if w.get("cards")) / cards


def pair_precision(gold: Mapping[str, Collection[str]], pairs: Mapping[str, Collection[str]]) -> float | None:
    """Share of the (product, tag) pairs in ``pairs`` that are gold; None without pairs."""
    total = sum(len(tags) for tags in pairs.values())
    if not total:
        return None
    right = sum(len(set(tags) & set(gold.get(pid, ()))) for pid, tags in pairs.items())
    return right / total


# --------------------------------------------------------------------------------------------------------
# Data: the seed, the pool and the taxonomy of one set
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SetData:
    name: str
    seed: list[dict[str, Any]]
    pool: list[dict[str, Any]]
    tag_names: list[str]  # every tag name of the set, one per folded key
    too_long: int = 0  # products left out of the draws: untagged, or a title longer than the import takes

    def gold(self, fold) -> dict[str, set[str]]:
        """Folded gold tags of the pool products by external id."""
        return {r["id"]: {fold(t) for t in r["tags"]} for r in self.pool}


def set_data_load(
    path: Path, *, seed_size: int, pool_size: int, seed: int, fold, max_title: int | None = None
) -> SetData:
    """The seed and the pool (seeded draws without overlap) and the taxonomy of ``path`` (a dev.jsonl).

    ``max_title``: the longest title the catalog import accepts; longer ones are not drawn (the import
    would reject their rows, and a product the app never holds cannot be reviewed)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tagged = [r for r in records if r.get("tags") and (max_title is None or len(r["title"]) <= max_title)]
    if len(tagged) < seed_size + 1:
        raise BenchError(f"{path}: {len(tagged)} tagged products, the seed alone needs {seed_size}")
    rng = random.Random(f"effort:{path.parent.name}:{seed}")
    order = rng.sample(range(len(tagged)), len(tagged))
    seed_rows = [tagged[i] for i in order[:seed_size]]
    pool_rows = [tagged[i] for i in order[seed_size : seed_size + pool_size]]
    names: dict[str, str] = {}
    for record in records:
        for tag in record.get("tags") or ():
            names.setdefault(fold(tag), tag)  # the app folds "t-shirt" and "t shirt" into one tag
    return SetData(
        path.parent.name, seed_rows, pool_rows, sorted(names.values()), too_long=len(records) - len(tagged)
    )


def catalog_file_write(data: SetData, path: Path, *, keep_category_path: bool = False) -> None:
    """The catalog a team uploads: the seed with its tags, the pool without.

    ``category_path`` is left out unless ``keep_category_path``: on four shared sets the tags are its nodes
    lower-cased, so a tagger reading it copies the answer, which says nothing of the effort on a catalog
    whose tags are not already in its products (the quality bench and ``mlcore.simulate`` withhold it too)."""
    left_out = {"tags", "source"} | (set() if keep_category_path else {"category_path"})
    with path.open("w", encoding="utf-8") as handle:
        for record, with_tags in [(r, True) for r in data.seed] + [(r, False) for r in data.pool]:
            row = {k: v for k, v in record.items() if k not in left_out and v is not None}
            if with_tags:
                row["tags"] = record["tags"]
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def taxonomy_file_write(data: SetData, path: Path) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name"])
        writer.writerows([name] for name in data.tag_names)


# --------------------------------------------------------------------------------------------------------
# The stack: gunicorn, a Celery worker, the broker
# --------------------------------------------------------------------------------------------------------


class Broker:
    """The Redis broker's queues: emptied before a run, watched for the loop to settle."""

    QUEUES = ("default", "train")

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def clear(self) -> None:
        # A message left by an earlier run names a job id of a dropped database; the keys are kombu's.
        self.client.delete(*self.QUEUES, "unacked", "unacked_index", "unacked_mutex")

    def idle(self) -> bool:
        """Nothing waiting and nothing delivered but unacknowledged (tasks ack late: a running task's
        message stays in ``unacked`` until it finished)."""
        waiting = sum(self.client.llen(queue) for queue in self.QUEUES)
        return waiting == 0 and self.client.hlen("unacked") == 0


@dataclasses.dataclass
class Stack:
    env: dict[str, str]
    server: GunicornServer
    worker: subprocess.Popen
    worker_log: Path

    def stop(self) -> None:
        try:
            os.killpg(self.worker.pid, signal.SIGTERM)  # warm shutdown: the running task finishes
            self.worker.wait(timeout=120)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        self.server.stop()


def stack_env(bench_url: str, var_dir: Path, *, window: int, broker_url: str) -> dict[str, str]:
    return django_env(
        bench_url,
        **SERVER_SETTINGS,
        CELERY_BROKER_URL=broker_url,
        TAGSTUDIO_VAR_DIR=str(var_dir),
        MODEL_DIR=str(var_dir / "models"),
        STATIC_ROOT=str(var_dir / "static"),
        # Kept between runs: a product's text is embedded once, as a deployment keeps its cache.
        EMBEDDING_CACHE_DIR=str(CACHE_DIR / "embeddings"),
        RETRAIN_AFTER_REVIEWS=str(window),
        MODEL_PROMOTION="auto",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )


def stack_start(env: dict[str, str], var_dir: Path) -> Stack:
    (var_dir / "static").mkdir(
        exist_ok=True
    )  # WhiteNoise warns about a missing STATIC_ROOT; the API needs none
    server = gunicorn_start(
        "tagstudio.wsgi",
        env=env,
        options=[
            "--workers",
            "2",
            "--threads",
            "2",
            "--worker-class",
            "gthread",
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],  # fmt: skip
    )
    worker_log = var_dir / "worker.log"
    with worker_log.open("wb") as log:
        # One process for both queues (2 cores): trainings and refresh batches run one after the other.
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tagstudio", "worker", "-Q", "default,train",
             "--concurrency", "1", "--prefetch-multiplier", "1", "--loglevel", "WARNING",
             "-n", f"effort-bench-{os.getpid()}@%h"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Stack(env=env, server=server, worker=worker, worker_log=worker_log)


class Api:
    """The REST API as one user (token auth)."""

    def __init__(self, base: str, token: str) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        # gunicorn closes a keep-alive connection after 2 idle seconds; a poll that reuses it at that moment
        # finds it closed without a response (seen once in a 15-minute run). Idempotent requests retry on a
        # fresh connection; a POST (a review submit) never does.
        retry = Retry(total=3, status=0, backoff_factor=0.2, allowed_methods={"GET", "HEAD", "PUT"})
        self.session.mount("http://", HTTPAdapter(max_retries=retry))

    def call(self, method: str, path: str, *, expect: Collection[int] = (200,), **kwargs):
        response = self.session.request(method, self.base + path, timeout=600, **kwargs)
        if response.status_code not in expect:
            raise BenchError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response


# --------------------------------------------------------------------------------------------------------
# One run: a set in one mode
# --------------------------------------------------------------------------------------------------------


def _users_create() -> tuple[str, str]:
    from annotation.roles import ADMIN, OPERATOR
    from annotation.services.users import user_create

    admin = user_create(username="bench-admin", password=PASSWORD, role=ADMIN, validate=False)[1]
    operator = user_create(username="bench-operator", password=PASSWORD, role=OPERATOR, validate=False)[1]
    return admin, operator


def _import_catalog(admin: Api, path: Path, expected: int) -> dict[str, Any]:
    with path.open("rb") as handle:
        job = admin.call(
            "POST",
            "/api/v1/imports/",
            expect=(202,),
            files={"file": (path.name, handle, "application/x-ndjson")},
        ).json()
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        job = admin.call("GET", f"/api/v1/imports/{job['id']}/").json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(POLL_S)
    if job["status"] != "succeeded" or job["rows_ok"] != expected:
        raise BenchError(f"catalog import: {json.dumps(job)[:1000]}")
    return job


def _latest_training(api: Api) -> dict[str, Any] | None:
    body = api.call("GET", "/api/v1/training-jobs/").json()
    rows = body["results"] if isinstance(body, dict) else body
    return max(rows, key=lambda r: r["id"]) if rows else None


def wait_settled(api: Api, broker: Broker, *, after_job: int) -> dict[str, Any]:
    """Wait for a training job newer than ``after_job`` to finish and then for the broker to stay idle
    (its refresh batches, the queue ranking and whatever else the activation started); the job."""
    started = time.monotonic()
    idle = 0
    job = None
    while time.monotonic() - started < SETTLE_TIMEOUT_S:
        if job is None:
            latest = _latest_training(api)
            if latest is not None and latest["id"] > after_job:
                job = latest
            elif time.monotonic() - started > 120:
                raise BenchError(f"no training was requested after job {after_job} (RETRAIN_AFTER_REVIEWS?)")
        elif job["status"] not in ("succeeded", "failed"):
            job = api.call("GET", f"/api/v1/training-jobs/{job['id']}/").json()
        finished = job is not None and job["status"] in ("succeeded", "failed")
        idle = idle + 1 if finished and broker.idle() else 0
        if idle >= SETTLE_POLLS:
            version = None
            if job["model_version"]:
                version = api.call("GET", f"/api/v1/models/{job['model_version']}/").json()
            return {
                "job": job["id"],
                "status": job["status"],
                "error": (job.get("error") or "")[:300],
                "version": job.get("model_version_name"),
                "active": bool(version and version["is_active"]),
                "valid_micro_f1": (version or {}).get("metrics", {}).get("micro_f1"),
                "train_size": (version or {}).get("train_size"),
                "seconds": round(time.monotonic() - started, 1),
            }
        time.sleep(POLL_S)
    raise BenchError(f"the loop did not settle within {SETTLE_TIMEOUT_S:.0f} s (training job {job})")


def catalog_state(bench_url: str, pool_ids: Collection[str], fold) -> dict[str, Any]:
    """The pool's catalog as it stands, and the auto-approved (source ``model``) pairs. Read with SQL: a
    measurement, not an operator's action.

    Reviewed products carry what the person approved; products the model approved in full (status
    ``auto``, with auto-approval on) what it approved; the others what the active model selects for them.
    """
    import psycopg

    with psycopg.connect(bench_url) as conn:
        approved: dict[str, set[str]] = {}
        approved_model: dict[str, set[str]] = {}
        for external_id, name, source in conn.execute(
            "SELECT p.external_id, t.name, pt.source FROM annotation_product p "
            "JOIN annotation_producttag pt ON pt.product_id = p.id JOIN annotation_tag t ON t.id = pt.tag_id"
        ):
            approved.setdefault(external_id, set()).add(fold(name))
            if source == "model":
                approved_model.setdefault(external_id, set()).add(fold(name))
        status_of = dict(conn.execute("SELECT external_id, review_status FROM annotation_product").fetchall())
        selected: dict[str, set[str]] = {}
        for external_id, name in conn.execute(
            "SELECT p.external_id, t.name FROM annotation_suggestion s "
            "JOIN annotation_product p ON p.id = s.product_id JOIN annotation_tag t ON t.id = s.tag_id "
            "WHERE s.selected AND p.review_status = 'unreviewed' "
            "AND s.model_version_id = (SELECT id FROM annotation_modelversion WHERE is_active)"
        ):
            selected.setdefault(external_id, set()).add(fold(name))
        unsuggested = conn.execute(
            "SELECT count(*) FROM annotation_product p WHERE p.review_status = 'unreviewed' AND "
            "p.suggested_by_id IS DISTINCT FROM (SELECT id FROM annotation_modelversion WHERE is_active)"
        ).fetchone()[0]
    catalog = {
        eid: approved.get(eid, set()) if status_of.get(eid) != "unreviewed" else selected.get(eid, set())
        for eid in pool_ids
    }
    return {
        "catalog": catalog,
        "auto_pairs": {eid: tags for eid, tags in approved_model.items() if eid in pool_ids},
        "reviewed": sum(1 for eid in pool_ids if status_of.get(eid) == "reviewed"),
        "auto": sum(1 for eid in pool_ids if status_of.get(eid) == "auto"),
        "not_suggested_by_active": unsuggested,
    }


def audit_figures(state: Mapping[str, Any]) -> dict[str, Any]:
    """What ``GET /api/v1/auto-approval/`` says about the audit: the realised precision pooled over every
    version's audited pairs (confirmed / pairs), the active version's own figures, and whether approvals
    stopped (the state's shape: annotation.api.models.serializers.AutoApprovalStateSerializer)."""
    versions = state.get("versions") or []
    pairs = sum(int((v.get("audit") or {}).get("pairs") or 0) for v in versions)
    confirmed = sum(int((v.get("audit") or {}).get("confirmed") or 0) for v in versions)
    active = next((v for v in versions if v.get("is_active")), None)
    active_audit = (active or {}).get("audit") or {}
    return {
        "audit_pairs": pairs,
        "audit_precision": round(confirmed / pairs, 4) if pairs else None,
        "active_audit_precision": active_audit.get("precision"),
        "active_audit_lower_bound": active_audit.get("lower_bound"),
        "active_audit_pairs": active_audit.get("pairs"),
        # Why a version approves what it does (or nothing): its cuts and the evidence they stand on.
        "active_global_cut": (active or {}).get("global_cut"),
        "active_tags_with_own_cut": (active or {}).get("tags_with_own_cut"),
        "active_evidence": (active or {}).get("evidence"),
        "active_no_approval_reason": (active or {}).get("no_approval_reason"),
        "active_queue_exit_reason": (active or {}).get("queue_exit_reason"),
        "stopped": bool(state.get("stopped")),
        "stop": state.get("stop"),
        "out_of_queue": state.get("products_out_of_queue"),
    }


def run_set(
    data: SetData, mode: str, args: argparse.Namespace, broker: Broker, rule: CardRule
) -> dict[str, Any]:
    """Set up the stack for ``data``, run the operator in ``mode``, return the figures."""
    bench_url = database_url(args.database_url, BENCH_DB)
    var_dir = Path(tempfile.mkdtemp(prefix=f"tagstudio-effort-{data.name}-{mode}-"))
    env = stack_env(bench_url, var_dir, window=args.window, broker_url=args.broker_url)
    log = _logger(f"{data.name}/{mode}")
    started = time.monotonic()
    database_create(bench_url)
    broker.clear()
    stack = None
    try:
        django_migrate(env)
        admin_token, operator_token = _users_create()
        taxonomy = var_dir / "taxonomy.csv"
        taxonomy_file_write(data, taxonomy)
        subprocess.run(
            [sys.executable, "manage.py", "import_taxonomy", str(taxonomy)],
            cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stack = stack_start(env, var_dir)
        admin = Api(stack.server.base_url, admin_token)
        operator = Api(stack.server.base_url, operator_token)
        if mode == "auto":
            probe = admin.call("GET", AUTO_APPROVAL_PATH, expect=(200, 404))
            if probe.status_code == 404:
                log(NOT_AVAILABLE)
                return {"mode": mode, "available": False, "note": NOT_AVAILABLE}
            admin.call(
                "PUT",
                AUTO_APPROVAL_PATH,
                json={"enabled": True, "target_precision": AUTO_TARGET_PRECISION},
                expect=(200,),
            )
        if mode == "random":  # as an admin would, before the first ranking
            admin.call("PUT", QUEUE_STRATEGY_PATH, json={"strategy": "random"}, expect=(200,))
        catalog_path = var_dir / "catalog.jsonl"
        catalog_file_write(data, catalog_path, keep_category_path=args.keep_category_path)
        _import_catalog(admin, catalog_path, len(data.seed) + len(data.pool))
        for record in data.seed:  # the team confirms its tagged products: they leave the review queue
            admin.call(
                "POST",
                f"/api/v1/products/{quote(record['id'], safe='/')}/review/",
                json={"tags": record["tags"]},
            )
        job = admin.call("POST", "/api/v1/models/train/", expect=(202,)).json()
        training = wait_settled(admin, broker, after_job=job["job_id"] - 1)
        last_job = training["job"]
        setup_s = time.monotonic() - started
        gold = data.gold(rule.fold)
        gold_names = {r["id"]: r["tags"] for r in data.pool}
        pool_ids = set(gold)
        state = catalog_state(bench_url, pool_ids, rule.fold)
        windows: list[dict[str, Any]] = [
            {
                "window": 0,
                "reviews": 0,
                "catalog_f1": round(catalog_micro_f1(gold, state["catalog"]), 4),
                "training": training,
                **_auto_fields(admin, mode, gold, state),
            }
        ]
        log(f"setup {setup_s:.0f} s; seed model catalog micro-F1 {windows[0]['catalog_f1']:.4f}")
        reviews = 0
        mismatches = 0
        exhausted = False
        while reviews < args.reviews and not exhausted:
            efforts: list[CardEffort] = []
            window_started = time.monotonic()
            while len(efforts) < args.window and reviews < args.reviews:
                response = operator.call("POST", "/api/v1/review/next/", expect=(200, 204))
                if response.status_code == 204:
                    exhausted = True
                    break
                card = response.json()
                external_id = card["product"]["external_id"]
                if external_id not in gold:
                    raise BenchError(f"review/next handed out {external_id!r}, not a pool product")
                effort = card_effort(card, gold[external_id], rule)
                result = operator.call(
                    "POST",
                    f"/api/v1/products/{quote(external_id, safe='/')}/review/",
                    json={"tags": gold_names[external_id], "claim": card["claim"]},
                ).json()
                # The server's own view of the same card: unchanged exactly when it saw no edit.
                if result.get("edited") is not None and result["edited"] == effort.unchanged:
                    mismatches += 1
                efforts.append(effort)
                reviews += 1
            review_s = time.monotonic() - window_started
            if not efforts:
                break
            settled = None
            if len(efforts) == args.window:  # the window's last submit requested a training
                settled = wait_settled(admin, broker, after_job=last_job)
                last_job = settled["job"]
            state = catalog_state(bench_url, pool_ids, rule.fold)
            window = {
                "window": len(windows),
                "reviews": reviews,
                **window_summary(efforts),
                "catalog_f1": round(catalog_micro_f1(gold, state["catalog"]), 4),
                "pool_reviewed": state["reviewed"],
                "review_s": round(review_s, 1),
                "training": settled,
                **_auto_fields(admin, mode, gold, state),
            }
            windows.append(window)
            log(
                f"window {window['window']}: {reviews} reviews, actions median {window['actions_median']:g} "
                f"mean {window['actions_mean']:.2f} (typing {window['baseline_mean']:.2f}), unchanged "
                f"{window['unchanged_share']:.0%}, catalog F1 {window['catalog_f1']:.4f}, reviews {review_s:.0f} s, "
                f"loop {settled['seconds'] if settled else 0:.0f} s ({settled['version'] if settled else '-'})"
                + (
                    f"; auto-approved {window['auto_products']} products ({window['auto_out_of_queue']} out of the "
                    f"queue), precision vs gold {window['auto_precision_vs_gold']}, audit {window['audit_precision']} "
                    f"({window['audit_pairs']} pairs), stopped {window['stopped']}"
                    + "".join(
                        f"; {window[key]}"
                        for key in ("active_no_approval_reason", "active_queue_exit_reason")
                        if window.get(key)
                    )
                    if mode == "auto"
                    else ""
                )
            )
        return {
            "mode": mode,
            "available": True,
            "set": data.name,
            "seed": len(data.seed),
            "pool": len(data.pool),
            "tags": len(data.tag_names),
            "left_out": data.too_long,
            "reviews": reviews,
            "pool_exhausted": exhausted,
            "count_mismatches": mismatches,
            "setup_s": round(setup_s, 1),
            "wall_s": round(time.monotonic() - started, 1),
            "windows": windows,
        }
    finally:
        if stack is not None:
            stack.stop()
        if not args.keep_db:
            database_drop(bench_url)
        if args.keep_files:
            log(f"model artifacts and logs kept in {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


def _auto_fields(
    admin: Api, mode: str, gold: Mapping[str, Collection[str]], state: Mapping[str, Any]
) -> dict:
    if mode != "auto":
        return {}
    body = admin.call("GET", AUTO_APPROVAL_PATH).json()
    pairs = state["auto_pairs"]
    precision = pair_precision(gold, pairs)
    return {
        "auto_products": len(pairs),
        "auto_out_of_queue": state["auto"],
        "auto_pairs": sum(len(t) for t in pairs.values()),
        "auto_precision_vs_gold": None if precision is None else round(precision, 4),
        **audit_figures(body),
    }


def _logger(prefix: str):
    def log(message: str) -> None:
        print(f"[effort_bench {dt.datetime.now():%H:%M:%S}] {prefix}: {message}", flush=True)

    return log


# --------------------------------------------------------------------------------------------------------
# Results: merge, targets, README
# --------------------------------------------------------------------------------------------------------


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "pool": args.pool,
        "seed_size": args.seed_size,
        "reviews": args.reviews,
        "window": args.window,
        "seed": args.seed,
        "category_path": "kept" if args.keep_category_path else "withheld",
    }


def results_load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"runs": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def results_store(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def targets(runs: Mapping[str, Mapping[str, Any]], *, full_reviews: int = 2000) -> dict[str, Any]:
    """Which sets meet each target, from the stored runs (``runs[set][mode]``)."""
    median_met, catalog_met = [], []
    for name, modes in sorted(runs.items()):
        review = modes.get("review", {})
        last = (review.get("windows") or [{}])[-1]
        if (
            review.get("reviews", 0) >= full_reviews
            and last.get("actions_median", 99) <= TARGET_MEDIAN_ACTIONS
        ):
            median_met.append(name)
        auto = modes.get("auto", {})
        if auto.get("available") and auto.get("reviews", 0) >= full_reviews:
            final = auto["windows"][-1]
            audit = final.get("audit_precision")
            if (
                final["catalog_f1"] >= TARGET_CATALOG_F1
                and audit is not None
                and audit >= TARGET_REALISED_PRECISION
            ):
                catalog_met.append(name)
    return {
        "median": {"met_sets": median_met, "met": len(median_met) >= TARGET_MEDIAN_SETS},
        "catalog": {"met_sets": catalog_met, "met": len(catalog_met) >= TARGET_CATALOG_SETS},
    }


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _left_out(run: Mapping[str, Any]) -> str:
    left = run.get("left_out") or 0
    return (
        f" ({left:,} products of the set not drawable: no tag, or a title longer than the import takes)"
        if left
        else ""
    )


def _per_card(window: Mapping[str, Any]) -> str:
    cards = window.get("cards")
    if not cards:
        return "—"
    return " / ".join(f"{window[k] / cards:.2f}" for k in ("wrong_checked", "right_unchecked", "typed"))


QUEUE_ORDERS = {"review": "the app's (active learning)", "random": "random"}


def accuracy_per_action_lines(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The section's table of catalog accuracy against the human actions spent, per set: the app's queue
    order (the ``review`` run), a random order (the ``random`` run, where measured) and typing by hand."""
    rows = []
    for name in sorted(runs):
        modes = runs[name]
        measured = {
            mode: modes[mode]
            for mode in QUEUE_ORDERS
            if modes.get(mode, {}).get("available", True) and modes.get(mode, {}).get("windows")
        }
        if not measured:
            continue
        curves = {mode: effort_curve(run) for mode, run in measured.items()}
        # The accuracy every measured order reaches; a random order's cards are a fair sample of the pool's
        # typing cost (the app's queue hands out the products with the most tags to fix first).
        goal = min(points[-1][2] for points in curves.values())
        budget = min(points[-1][1] for points in curves.values())  # the effort all of them spent
        typing = typing_mean_of(measured.get("random") or measured["review"])
        reach = {mode: actions_to_reach(points, goal) for mode, points in curves.items()}
        for mode, run in measured.items():
            points = curves[mode]
            spent = points[-1][1]
            share = (
                f"{reach[mode] / reach['random']:.0%}"
                if mode != "random" and reach.get("random") and reach[mode] is not None
                else "—"
            )
            typed = typing_actions_to_reach(goal, pool=run["pool"], typing_mean=typing) if typing else None
            rows.append(
                f"| {name} | {QUEUE_ORDERS[mode]} | {run['reviews']:,} | {spent:,.0f} | "
                f"{spent / max(run['reviews'], 1):.2f} | {points[0][2]:.4f} → {points[-1][2]:.4f} | "
                f"{budget:,.0f}: {_fmt(catalog_at_actions(points, budget), '.4f')} | "
                f"{goal:.4f} | {_fmt(reach[mode], ',.0f')} | {share} | {_fmt(typed, ',.0f')} |"
            )
    if not rows:
        return []
    return [
        "**Catalog accuracy per human action.** The same runs read as the effort a team spends for the accuracy "
        "of the whole catalog: the actions of every card so far against the pool's catalog micro-F1 after each "
        "window. *random* runs the same operator with the queue in random order (`--modes random`: "
        f"`PUT {QUEUE_STRATEGY_PATH}` with `random` before the first ranking); *goal* is the catalog micro-F1 "
        "every measured order of the set reaches, and *the same actions* the fewest any of them spent; "
        "*typing by hand* is what reaching the goal costs with no model: each product's tags typed (the "
        "typing mean of the pool) and the rest of the catalog empty, so micro-F1 = 2r / (1 + r) for a "
        "reviewed share r.",
        "",
        "| set | queue order | reviews | actions | per review | catalog micro-F1: seed model → after | "
        "catalog micro-F1 after the same actions | goal | actions to the goal | share of random's | "
        "typing by hand to the goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def render_section(results: Mapping[str, Any]) -> str:
    runs = results["runs"]
    lines = [
        "A simulated operator through the REST API of a real stack (gunicorn, one Celery worker for the "
        "`default` and `train` queues, Redis, PostgreSQL): per set a seed of 100 tagged products and a pool "
        "of up to 5,000 untagged ones (seeded draws from `dev.jsonl`), the taxonomy with every tag name of "
        "the set; 2,000 reviews from `review/next`, the gold tags submitted with the card's claim; after "
        "every 200 the server retrains (`RETRAIN_AFTER_REVIEWS`) and the operator waits for the training, "
        "the suggestion refresh and the queue ranking. **Actions** per card = 1 submit + 1 per pre-checked "
        "wrong chip + 1 per right chip shown unchecked + 1 per gold tag not shown (typed), with the HTML "
        "card's rule for shown and pre-checked chips; the *typing* column is the same card without "
        "suggestions (gold tags + submit). Catalog micro-F1 = over the pool, reviewed products with their "
        "approved (gold) tags, the others with the active model's selected tags, after the window's "
        "retraining (window 0: the seed model). The `auto` rows run the same with auto-approval on at "
        f"{AUTO_TARGET_PRECISION} target precision; '{NOT_AVAILABLE}' where `GET {AUTO_APPROVAL_PATH}` "
        "answers 404.",
        "",
    ]
    lines += [
        "| set | pool | reviews | last window: actions median / mean | unchanged | typing mean | catalog micro-F1: "
        "seed model → after the reviews | with auto-approval | audit's realised precision | run (min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in sorted(runs):
        review, auto = runs[name].get("review"), runs[name].get("auto")
        if review is None:
            continue
        first, last = review["windows"][0], review["windows"][-1]
        if auto is None:
            auto_f1 = audit = "not run"
        elif not auto.get("available", True):
            auto_f1 = audit = NOT_AVAILABLE
        else:
            auto_f1 = f"{auto['windows'][-1]['catalog_f1']:.4f}"
            audit = _fmt(auto["windows"][-1].get("audit_precision"), ".4f")
        lines.append(
            f"| {name} | {review['pool']:,} | {review['reviews']:,} | {_fmt(last.get('actions_median'), 'g')} / "
            f"{_fmt(last.get('actions_mean'), '.2f')} | {_fmt(last.get('unchanged_share'), '.0%')} | "
            f"{_fmt(last.get('baseline_mean'), '.2f')} | {first['catalog_f1']:.4f} → {last['catalog_f1']:.4f} | "
            f"{auto_f1} | {audit} | {review['wall_s'] / 60:.0f} |"
        )
    lines.append("")
    for name in sorted(runs):
        for mode in MODES:
            run = runs[name].get(mode)
            if run is None:
                continue
            if not run.get("available", True):
                lines += [f"**{name}, {mode}**: {run['note']}.", ""]
                continue
            lines += [
                f"**{name}, {mode}** — pool {run['pool']:,}, {run['tags']:,} tags, {run['reviews']:,} reviews"
                f"{' (pool exhausted)' if run.get('pool_exhausted') else ''}"
                f"{_left_out(run)}; setup {run['setup_s']:.0f} s, "
                f"run {run['wall_s'] / 60:.0f} min; measured {run.get('date', '?')} ({run.get('machine', '?')}, "
                f"`{run.get('command', '?')}`); cards whose count disagreed with the server's `edited`: "
                f"{run.get('count_mismatches', 0)}.",
                "",
            ]
            auto = mode == "auto"
            header = (
                "| window | reviews | actions median | actions mean | unchanged | per card: wrong checked / right "
                "unchecked / typed | typing mean | catalog micro-F1 | version (valid F1) | loop wait s |"
            )
            rule = "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
            if auto:
                header += (
                    " auto-approved products (out of the queue) / pairs | their precision vs gold | audit's "
                    "realised precision (pairs) | stopped |"
                )
                rule += "---:|---:|---:|---|"
            lines += [header, rule]
            for w in run["windows"]:
                training = w.get("training") or {}
                version = training.get("version") or "—"
                if training and not training.get("active"):
                    version += ", not promoted"
                row = (
                    f"| {w['window']} | {w['reviews']:,} | {_fmt(w.get('actions_median'), 'g')} | "
                    f"{_fmt(w.get('actions_mean'), '.2f')} | "
                    f"{'—' if w.get('unchanged_share') is None else format(w['unchanged_share'], '.0%')} | "
                    f"{_per_card(w)} | {_fmt(w.get('baseline_mean'), '.2f')} | {w['catalog_f1']:.4f} | {version} "
                    f"({_fmt(training.get('valid_micro_f1'), '.3f')}) | {_fmt(training.get('seconds'), '.0f')} |"
                )
                if auto:
                    row += (
                        f" {w.get('auto_products', 0):,} ({w.get('auto_out_of_queue', 0):,}) / "
                        f"{w.get('auto_pairs', 0):,} | {_fmt(w.get('auto_precision_vs_gold'), '.4f')} | "
                        f"{_fmt(w.get('audit_precision'), '.4f')} ({w.get('audit_pairs', 0):,}) | "
                        f"{'yes' if w.get('stopped') else 'no'} |"
                    )
                lines.append(row)
            lines.append("")
            stop = (run["windows"][-1].get("stop") or {}) if auto else {}
            if stop.get("reason"):
                interval = (stop.get("audit") or {}).get("interval")
                lines += [
                    f"Auto-approval stopped by the audit's stop rule: {stop['reason']}"
                    + (f" (two-sided interval {interval[0]:.3f}–{interval[1]:.3f})" if interval else "")
                    + "; approvals made before stay, later versions approve nothing.",
                    "",
                ]
    lines += accuracy_per_action_lines(runs)
    verdict = targets(runs)
    lines += [
        f"Targets: median {TARGET_MEDIAN_ACTIONS:g} action per product in the last window on ≥ {TARGET_MEDIAN_SETS} "
        f"of 7 sets — {'met' if verdict['median']['met'] else '**missed**'} "
        f"({len(verdict['median']['met_sets'])} measured sets meet it: {', '.join(verdict['median']['met_sets']) or 'none'}); "
        f"catalog micro-F1 with auto-approval ≥ {TARGET_CATALOG_F1} after 2,000 reviews with the audit's realised "
        f"precision ≥ {TARGET_REALISED_PRECISION} on ≥ {TARGET_CATALOG_SETS} sets — "
        f"{'met' if verdict['catalog']['met'] else '**missed**'} "
        f"({', '.join(verdict['catalog']['met_sets']) or 'no set'}). "
        f"Sets measured: {', '.join(sorted(runs)) or 'none'}; figures per window in `bench/figures/effort.json`.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sets", default="", help="comma-separated set names (default: every set in --data-dir)"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help="review (auto-approval off), auto (at 0.98), random (review with the queue in random order)",
    )
    parser.add_argument("--pool", type=int, default=5000, help="untagged products per set (at most)")
    parser.add_argument("--seed-size", type=int, default=100, help="tagged products the team starts with")
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--window", type=int, default=200, help="reviews per window = RETRAIN_AFTER_REVIEWS")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--keep-category-path",
        action="store_true",
        help="upload the products' category_path (withheld by default: on four sets it holds the tags)",
    )
    parser.add_argument("--database-url", default=BENCH_POSTGRES_URL, help="the PostgreSQL server")
    parser.add_argument("--broker-url", default=os.environ.get("CELERY_BROKER_URL", ""))
    parser.add_argument("--keep-db", action="store_true", help="keep the last set's database")
    parser.add_argument(
        "--keep-files",
        action="store_true",
        help="keep each run's model artifacts and logs (the directory is printed) for later analysis",
    )
    parser.add_argument(
        "--json-out", type=Path, default=DEFAULT_JSON, help="results, merged per set and mode"
    )
    parser.add_argument("--resume", action="store_true", help="skip (set, mode) pairs already in --json-out")
    parser.add_argument(
        "--write-readme", action="store_true", help="write the effort section of bench/README.md"
    )
    parser.add_argument(
        "--readme-only", action="store_true", help="write the README from --json-out, run nothing"
    )
    args = parser.parse_args(argv)
    if not args.broker_url.startswith("redis://") and not args.readme_only:
        parser.error("--broker-url (or CELERY_BROKER_URL) must name a Redis database the bench may use")
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    available = sorted(p.parent.name for p in args.data_dir.glob("*/dev.jsonl"))
    sets = [s for s in args.sets.split(",") if s] or available
    if missing := [s for s in sets if s not in available]:
        parser.error(f"--sets: no {args.data_dir}/<set>/dev.jsonl for {', '.join(missing)}")

    results = results_load(args.json_out)
    failed: list[str] = []
    if not args.readme_only:
        django_setup(database_url(args.database_url, BENCH_DB), CELERY_BROKER_URL=args.broker_url)
        rule = app_card_rule(precheck=True)
        from annotation.io.readers import MAX_TITLE_LENGTH  # needs Django set up (see app_card_rule)

        broker = Broker(args.broker_url)
        config = config_of(args)
        defaults = config_of(parser.parse_args([]))
        for name in sets:
            data = set_data_load(
                args.data_dir / name / "dev.jsonl",
                seed_size=args.seed_size,
                pool_size=args.pool,
                seed=args.seed,
                fold=rule.fold,
                max_title=MAX_TITLE_LENGTH,
            )
            for mode in modes:
                stored = results["runs"].get(name, {}).get(mode)
                if args.resume and stored is not None and stored.get("config") == config:
                    print(f"[effort_bench] {name}/{mode}: in {args.json_out}, skipped (--resume)")
                    continue
                try:
                    run = run_set(data, mode, args, broker, rule)
                except (BenchError, subprocess.CalledProcessError) as exc:
                    print(f"[effort_bench] {name}/{mode} FAILED: {exc}", file=sys.stderr)
                    failed.append(f"{name}/{mode}")
                    continue
                options = "".join(
                    f" --{k.replace('_', '-')} {v}" for k, v in config.items() if v != defaults[k]
                )
                run.update(
                    config=config,
                    command=f"nice -n 10 .venv/bin/python bench/effort_bench.py --sets {name} --modes {mode}{options}",
                    date=dt.date.today().isoformat(),
                    machine=f"{os.cpu_count()} cores {platform.machine()}",
                )
                results["runs"].setdefault(name, {})[mode] = run
                results_store(args.json_out, results)  # after every run: a later one may be resumed
    section = render_section(results)
    print(section)
    if args.write_readme or args.readme_only:
        replace_section("effort", "## Effort per product (`bench/effort_bench.py`)", section, README_PATH)
        print(f"[effort_bench] wrote {README_PATH.relative_to(REPO_ROOT)}")
    verdict = targets(results["runs"])
    for key, label in (
        ("median", "median 1 action, last window"),
        ("catalog", "catalog F1 with auto-approval"),
    ):
        print(
            f"[effort_bench] target {label}: {'met' if verdict[key]['met'] else 'MISSED'} {verdict[key]['met_sets']}"
        )
    if failed:
        print(f"[effort_bench] failed runs: {', '.join(failed)}", file=sys.stderr)
    return 0 if not failed and verdict["median"]["met"] and verdict["catalog"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
