"""Failure safety of the learning loop with real processes.

PostgreSQL (the test database, committed data), a private ``redis-server`` that each test starts (and
restarts) itself on a free port, and ``celery -A tagstudio worker`` subprocesses pointed at the test
database. The shared Redis is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from annotation.models import (
    JobStatus,
    ModelState,
    ModelVersion,
    Product,
    ReviewStatus,
    Suggestion,
    SuggestionRefresh,
    TrainingJob,
    TrainingTrigger,
)
from annotation.services.training import training_job_request
from tests.annotation.training_support import FAST_TAGGER, catalog_load, demo_rows

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 180  # bounds every wait: tiny data, the fastest tagger


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own, persisting to an append-only file so queued messages survive a restart
    (``persist=False``: no persistence at all, a restart loses every message)."""

    def __init__(self, directory: Path, *, persist: bool = True) -> None:
        self.directory = directory
        self.persist = persist
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() == "PONG"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed: `apt-get install redis-server` (see .ci/services)")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
            + (["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"])
            + ["--save", ""],
            stdout=open(self.directory / "redis.log", "ab"),  # noqa: SIM115 — closed with the process
            stderr=subprocess.STDOUT,
        )
        _wait_for(self.ping, "the private redis-server to answer", timeout=20)

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], capture_output=True, check=False)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT_S, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _reset_producers(app) -> None:
    # kombu keeps its pools in a global registry keyed by URL: empty it, or a closed pool comes back.
    kombu_pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path) -> Iterator[PrivateRedis]:
    """A private Redis; this test process's Celery app sends its tasks there too."""
    from tagstudio.celery import app

    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    # Django-configured Celery keeps the URL under several keys; the connections read these two.
    keys = ("broker_write_url", "broker_read_url")
    saved = {key: app.conf.get(key) for key in keys}
    app.conf.update({key: redis.url for key in keys})
    _reset_producers(app)
    assert app.connection_for_write().as_uri().endswith(f":{redis.port}/0")
    try:
        yield redis
    finally:
        app.conf.update(saved)
        _reset_producers(app)
        redis.stop()


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    def __init__(
        self, broker: PrivateRedis, log: Path, *, beat: bool = False, env_extra: dict | None = None
    ) -> None:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": _database_url(),  # pytest-django's test database (test_<name>)
                "CELERY_BROKER_URL": broker.url,
                "DJANGO_SETTINGS_MODULE": "tagstudio.settings_test",
                "MODEL_DIR": str(settings.MODEL_DIR),
                "EMBEDDING_CACHE_DIR": str(settings.EMBEDDING_CACHE_DIR),
                "TAGSTUDIO_TAGGER": settings.TAGSTUDIO_TAGGER,
                "SUGGESTION_BATCH_SIZE": str(settings.SUGGESTION_BATCH_SIZE),
                "MODEL_PROMOTION": settings.MODEL_PROMOTION,
                "TRAINING_HEARTBEAT_SECONDS": "0.2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(env_extra or {})
        # Beat inside the worker, as the embedded mode runs it (the sweeper, the reaper).
        beat_args = ["--beat", "--schedule", str(log.with_suffix(".beat"))] if beat else []
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tagstudio", "worker", "-Q", "default,train"]
            + ["--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO", "--without-gossip"]
            + ["--without-mingle", "--without-heartbeat", "--hostname", f"loop-test-{os.getpid()}@%h"]
            + beat_args,
            cwd=REPO_ROOT,
            env=env,
            stdout=open(log, "ab"),  # noqa: SIM115 — closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop/kill reaches the pool children
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def signal_group(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def start_worker(broker, tmp_path) -> Iterator[Callable[[], Worker]]:
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(broker, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture(autouse=True)
def fast_loop(settings):
    settings.TAGSTUDIO_TAGGER = FAST_TAGGER
    settings.MODEL_PROMOTION = "auto"
    settings.SUGGESTION_BATCH_SIZE = 50
    settings.RETRAIN_AFTER_REVIEWS = 200


def _job(job_id: int) -> TrainingJob:
    return TrainingJob.objects.select_related("model_version").get(id=job_id)


def _finished(job_id: int) -> TrainingJob | None:
    job = _job(job_id)
    return job if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) else None


def _refresh_done() -> SuggestionRefresh | None:
    refresh = SuggestionRefresh.objects.filter(model_version__is_active=True).order_by("-id").first()
    return refresh if refresh is not None and refresh.status == JobStatus.SUCCEEDED else None


def _artifact_dirs() -> list[str]:
    model_dir = Path(settings.MODEL_DIR)
    return sorted(p.name for p in model_dir.iterdir() if p.is_dir()) if model_dir.exists() else []


def _wait_job(worker: Worker, job_id: int) -> TrainingJob:
    try:
        return _wait_for(lambda: _finished(job_id), f"training job {job_id} to finish")
    except AssertionError:
        print(worker.output())
        raise


def _assert_loop_complete(version: ModelVersion, unreviewed: int) -> None:
    refresh = _wait_for(_refresh_done, "the suggestion refresh to finish")
    assert refresh.model_version_id == version.id
    # Every flagged product: the unreviewed ones and the imported reviewed ones.
    assert refresh.done == refresh.total == Product.objects.count()
    products = Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
    assert products.filter(needs_suggestion=True).count() == 0
    assert products.filter(suggested_by=version).count() == unreviewed
    per_product = Suggestion.objects.filter(model_version=version).values("product").distinct().count()
    assert per_product == Product.objects.count()
    # The queue priorities follow once the refresh is done.
    _wait_for(
        lambda: products.filter(priority__gt=0).count() == unreviewed,
        "the review-queue priorities",
        timeout=60,
    )


def test_worker_trains_promotes_and_refreshes_suggestions(start_worker):
    catalog_load(demo_rows(tagged=240, untagged=60), reviewed_tagged=True)
    worker = start_worker()
    job = training_job_request(trigger=TrainingTrigger.API)
    finished = _wait_job(worker, job.id)
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    version = finished.model_version
    assert version.state == ModelState.READY and version.is_active
    assert version.device and version.metrics["micro_f1"] > 0
    assert sorted(version.config["valid_ids"]) and version.valid_size == len(version.config["valid_ids"])
    assert finished.progress["phase"] == "done" and finished.progress["attempt"] == 1
    assert version.version in _artifact_dirs()
    assert not [name for name in _artifact_dirs() if ".tmp-" in name]
    _assert_loop_complete(version, unreviewed=60)


def test_sigkill_during_training_never_exposes_a_partial_model(start_worker):
    catalog_load(demo_rows(tagged=400, untagged=40), reviewed_tagged=True)
    worker = start_worker()
    job = training_job_request(trigger=TrainingTrigger.MANUAL)

    def training_child_pid() -> int | None:
        current = _job(job.id)
        phase = current.progress.get("phase", "")
        if current.status != JobStatus.RUNNING or phase in ("", "queued", "starting", "loading data"):
            return None
        host, _, pid = current.progress.get("worker", "").rpartition(":")
        return int(pid) if host == socket.gethostname() and pid.isdigit() else None

    pid = _wait_for(training_child_pid, "the training to be under way", every=0.05)
    os.kill(pid, signal.SIGKILL)  # the pool process doing the training dies mid-way
    # Right after the kill: nothing was promoted and nothing half-written is registered.
    assert not ModelVersion.objects.filter(is_active=True).exists()
    assert not ModelVersion.objects.filter(state=ModelState.READY).exists()

    finished = _wait_job(worker, job.id)
    # acks_late + reject_on_worker_lost: the task came back and a new attempt took over cleanly.
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.progress["attempt"] == 2 and "was lost; restarting" in finished.log
    version = finished.model_version
    assert version.is_active and ModelVersion.objects.count() == 1
    assert not [name for name in _artifact_dirs() if ".tmp-" in name]
    _assert_loop_complete(version, unreviewed=40)
    # And a new training can start.
    assert training_job_request(trigger=TrainingTrigger.MANUAL).id != job.id


def test_whole_worker_killed_job_fails_and_new_training_runs(start_worker, settings):
    catalog_load(demo_rows(tagged=400, untagged=20), reviewed_tagged=True)
    worker = start_worker()
    job = training_job_request(trigger=TrainingTrigger.MANUAL)
    _wait_for(
        lambda: _job(job.id).progress.get("phase") not in (None, "queued", "starting", "loading data"),
        "the training to be under way",
        every=0.05,
    )
    worker.signal_group(signal.SIGKILL)  # main process and pool: the message waits for its visibility timeout
    worker.process.wait()
    assert not ModelVersion.objects.filter(is_active=True).exists()
    assert _job(job.id).status == JobStatus.RUNNING

    settings.TRAINING_STALE_AFTER_SECONDS = 3
    time.sleep(3.5)  # the dead attempt's heartbeat goes stale
    new_job = training_job_request(trigger=TrainingTrigger.MANUAL)
    lost = _job(job.id)
    assert lost.status == JobStatus.FAILED and "worker lost" in lost.error
    assert lost.model_version is None or lost.model_version.state == ModelState.FAILED
    assert new_job.id != job.id

    replacement = start_worker()
    finished = _wait_job(replacement, new_job.id)
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.model_version.is_active
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    assert not [name for name in _artifact_dirs() if ".tmp-" in name]


def test_training_that_raises_fails_clearly_on_the_worker(start_worker):
    catalog_load(demo_rows(tagged=0, untagged=20))
    worker = start_worker()
    job = training_job_request(trigger=TrainingTrigger.API)
    finished = _wait_job(worker, job.id)
    assert finished.status == JobStatus.FAILED
    assert finished.error.startswith("No approved tags to train on")
    assert not ModelVersion.objects.exists() and not SuggestionRefresh.objects.exists()


def test_duplicate_deliveries_train_once_and_write_suggestions_once(start_worker):
    from annotation.tasks import model_train, suggestions_refresh

    catalog_load(demo_rows(tagged=240, untagged=60), reviewed_tagged=True)
    worker = start_worker()
    job = training_job_request(trigger=TrainingTrigger.MANUAL)
    model_train.delay(job.id)  # the same task delivered twice more
    model_train.delay(job.id)
    finished = _wait_job(worker, job.id)
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    version = finished.model_version
    _assert_loop_complete(version, unreviewed=60)
    rows_before = Suggestion.objects.filter(model_version=version).count()
    # Every batch of the refresh delivered again, on a catalog whose flags were set again.
    Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).update(needs_suggestion=True)
    for _ in range(2):
        suggestions_refresh.delay(version.id, 0)
    _wait_for(
        lambda: not Product.objects.filter(needs_suggestion=True).exists(),
        "the repeated batches",
        timeout=120,
    )
    time.sleep(2)  # let any straggler batch finish
    assert Suggestion.objects.filter(model_version=version).count() == rows_before
    assert ModelVersion.objects.count() == 1 and TrainingJob.objects.count() == 1
    log = _job(job.id).log
    assert log.count("attempt 1 on") == 1 and "attempt 2" not in log


def test_redis_restart_with_queued_jobs_worker_reconnects_and_completes(start_worker, broker):
    catalog_load(demo_rows(tagged=240, untagged=30), reviewed_tagged=True)
    worker = start_worker()
    _wait_for(lambda: "ready." in worker.output(), "the worker to be ready", timeout=120)
    worker.signal_group(signal.SIGSTOP)  # the worker holds its broker connection but consumes nothing
    job = training_job_request(trigger=TrainingTrigger.API)  # queued in Redis
    broker.stop()
    broker.start()  # same port, same append-only file: the queued message is still there
    worker.signal_group(signal.SIGCONT)
    finished = _wait_job(worker, job.id)
    assert finished.status == JobStatus.SUCCEEDED, finished.error + worker.output()
    _assert_loop_complete(finished.model_version, unreviewed=30)
    assert "Connection to broker lost" in worker.output() or "reconnect" in worker.output().lower()
