"""Nothing lost or stuck when the broker or a whole worker fails (issue 14, points 2-4).

Real PostgreSQL (the test database, committed data), a private ``redis-server`` without persistence that
each test starts, stops and restarts itself on a free port (the shared Redis is never touched), and
``celery worker --beat`` subprocesses (beat inside the worker, as the embedded mode runs it) with short
sweeper and reaper periods. "Broker down" is that private port with no server on it yet.

Each test ends with every job succeeded or failed with a reason; the figures of a run (how long each
request took while the broker was down, how long the work took to recover) are printed (``-s``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation import jobs
from annotation.models import (
    ExportJob,
    ImportJob,
    JobStatus,
    ModelState,
    ModelVersion,
    Product,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Setting,
    SuggestionRefresh,
    TrainingJob,
    TrainingTrigger,
)
from annotation.services.training import training_job_request
from annotation.services.training.run import model_version_train
from mlcore.selection import DEFAULT_STRATEGY, STRATEGIES
from tests.annotation.test_worker_failures import PrivateRedis, Worker, _reset_producers, _wait_for
from tests.annotation.training_support import FAST_TAGGER, catalog_load, demo_rows, memory_broker

# annotation.services.queue.RECOMPUTE_PENDING_SETTING (spelled out: the test also runs against older code)
RECOMPUTE_PENDING_SETTING = "queue_priorities_requested_at"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECOVERY_S = 60  # every wait for recovered work
SLOW_REQUEST_S = 5  # a request while the broker is down answers within this
STALE_S = 3
REAP_S = 1
FAST_RECOVERY = {
    "JOBS_SWEEP_SECONDS": "1",
    "JOBS_RESEND_AFTER_SECONDS": "2",
    "TRAINING_REAP_SECONDS": str(REAP_S),
    "TRAINING_STALE_AFTER_SECONDS": str(STALE_S),
}


@pytest.fixture(autouse=True)
def fast_loop(settings):
    settings.TAGSTUDIO_TAGGER = FAST_TAGGER
    settings.MODEL_PROMOTION = "manual"
    settings.SUGGESTION_BATCH_SIZE = 50
    settings.RETRAIN_AFTER_REVIEWS = 0


@pytest.fixture
def redis(tmp_path) -> Iterator[PrivateRedis]:
    """A private Redis without persistence, not started: the app's broker is down until the test starts it."""
    from tagstudio.celery import app

    server = PrivateRedis(tmp_path / "redis", persist=False)
    keys = ("broker_write_url", "broker_read_url")
    saved = {key: app.conf.get(key) for key in keys}
    app.conf.update({key: server.url for key in keys})
    _reset_producers(app)
    try:
        yield server
    finally:
        app.conf.update(saved)
        _reset_producers(app)
        server.stop()


@pytest.fixture
def start_worker(redis, tmp_path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(**env: str) -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = Worker(redis, log, beat=True, env_extra={**FAST_RECOVERY, **env})
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _done(model, job_id: int):
    job = model.objects.get(id=job_id)
    return job if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) else None


def _wait_done(worker: Worker, model, job_id: int, timeout: float = RECOVERY_S):
    try:
        return _wait_for(
            lambda: _done(model, job_id), f"{model.__name__} {job_id} to finish", timeout=timeout
        )
    except AssertionError:
        print(worker.output())
        raise


def _ready_version() -> ModelVersion:
    """A ready, inactive model version, trained in this process (tasks it sends go nowhere)."""
    with memory_broker():
        job = training_job_request(trigger=TrainingTrigger.COMMAND, enqueue=False)
        model_version_train(job.id)
    version = TrainingJob.objects.get(id=job.id).model_version
    assert version.state == ModelState.READY and not version.is_active
    return version


def _priorities_ranked(unreviewed: int) -> bool:
    ranked = Product.objects.filter(review_status=ReviewStatus.UNREVIEWED, priority__gt=0).count()
    return ranked == unreviewed and not Setting.objects.filter(key=RECOMPUTE_PENDING_SETTING).exists()


def _other_strategy() -> str:
    return sorted(name for name in STRATEGIES if name != DEFAULT_STRATEGY)[0]


def _accepted(response, what: str) -> None:
    assert response.status_code in (200, 201, 202), (what, response.status_code, response.content[:500])


def test_broker_down_each_request_succeeds_and_its_work_runs_once_the_broker_is_back(
    admin_api, start_worker, redis
):
    catalog_load(demo_rows(tagged=160, untagged=30), reviewed_tagged=True)
    version = _ready_version()
    rows = demo_rows(tagged=160, untagged=50)[-20:]  # 20 products the catalog does not have yet
    upload = "".join(json.dumps(row) + "\n" for row in rows).encode()

    # The broker is down (nothing listens on its port).
    calls = {
        "import": lambda: admin_api.post(
            "/api/v1/imports/",
            {"file": SimpleUploadedFile("more.jsonl", upload)},
            format="multipart",
        ),
        "export": lambda: admin_api.post("/api/v1/exports/", {"format": "jsonl"}, format="json"),
        "activate": lambda: admin_api.post(f"/api/v1/models/{version.id}/activate/"),
        "strategy": lambda: admin_api.put(
            "/api/v1/queue/strategy/", {"strategy": _other_strategy()}, format="json"
        ),
        "train": lambda: admin_api.post("/api/v1/models/train/"),
    }
    answers = {name: _timed(call) for name, call in calls.items()}
    print({name: (response.status_code, round(seconds, 2)) for name, (response, seconds) in answers.items()})
    for name, (response, seconds) in answers.items():
        _accepted(response, name)
        assert seconds < SLOW_REQUEST_S, f"{name} took {seconds:.1f}s with the broker down"
    import_job = ImportJob.objects.get()
    export_job = ExportJob.objects.get()
    training_job = TrainingJob.objects.get(trigger=TrainingTrigger.API)
    assert ModelVersion.objects.get(id=version.id).is_active
    refresh = SuggestionRefresh.objects.get(model_version=version)
    assert (import_job.status, export_job.status, training_job.status, refresh.status) == (
        JobStatus.QUEUED,
    ) * 4

    # The broker comes back, empty (no persistence); a worker with beat starts.
    started = time.monotonic()
    redis.start()
    worker = start_worker(MODEL_PROMOTION="manual")
    recovered = {}
    for name, model, job_id in (
        ("import", ImportJob, import_job.id),
        ("export", ExportJob, export_job.id),
        ("train", TrainingJob, training_job.id),
    ):
        job = _wait_done(worker, model, job_id)
        recovered[name] = round(time.monotonic() - started, 1)
        assert job.status == JobStatus.SUCCEEDED, (name, job.error)
    _wait_for(
        lambda: SuggestionRefresh.objects.filter(model_version=version, status=JobStatus.SUCCEEDED).exists(),
        "the activated version's suggestion refresh",
        timeout=RECOVERY_S,
    )
    recovered["refresh"] = round(time.monotonic() - started, 1)
    refresh = SuggestionRefresh.objects.filter(model_version=version).latest("id")
    assert refresh.done == refresh.total > 0
    assert not Product.objects.filter(needs_suggestion=True).exists()
    unreviewed = Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).count()
    _wait_for(lambda: _priorities_ranked(unreviewed), "the queue priorities", timeout=RECOVERY_S)
    recovered["priorities"] = round(time.monotonic() - started, 1)
    print("recovered after the broker came back (s):", recovered)
    assert not TrainingJob.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists()


def test_broker_down_strategy_change_reranks_once_the_broker_is_back(admin_api, start_worker, redis):
    catalog_load(demo_rows(tagged=40, untagged=60), reviewed_tagged=True)
    response, seconds = _timed(
        lambda: admin_api.put("/api/v1/queue/strategy/", {"strategy": _other_strategy()}, format="json")
    )
    print("strategy change with the broker down:", response.status_code, round(seconds, 2), "s")
    _accepted(response, "strategy")
    assert seconds < SLOW_REQUEST_S
    assert not Product.objects.filter(priority__gt=0).exists()

    started = time.monotonic()
    redis.start()
    start_worker()
    _wait_for(lambda: _priorities_ranked(60), "the cold-start priorities", timeout=RECOVERY_S)
    print("re-ranked after the broker came back:", round(time.monotonic() - started, 1), "s")


def _waiting(redis: PrivateRedis, queue: str) -> int:
    result = subprocess.run(
        ["redis-cli", "-p", str(redis.port), "llen", queue], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip())


def test_queued_training_survives_a_redis_restart_without_persistence(start_worker, redis):
    catalog_load(demo_rows(tagged=160, untagged=20), reviewed_tagged=True)
    redis.start()
    job = training_job_request(trigger=TrainingTrigger.API)  # its message waits in Redis, no worker yet
    assert _waiting(redis, "train") == 1
    redis.stop()
    redis.start()  # no persistence: the message is gone
    assert _waiting(redis, "train") == 0
    started = time.monotonic()
    worker = start_worker()
    finished = _wait_done(worker, TrainingJob, job.id)
    print("queued training after a Redis restart finished in", round(time.monotonic() - started, 1), "s")
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert TrainingJob.objects.count() == 1


def test_whole_worker_kill_during_training_is_reaped_on_schedule_and_retraining_resumes(
    start_worker, redis, admin_user
):
    catalog_load(demo_rows(tagged=400, untagged=20), reviewed_tagged=True)
    redis.start()
    env = {"RETRAIN_AFTER_REVIEWS": "3", "MODEL_PROMOTION": "auto"}
    worker = start_worker(**env)
    job = training_job_request(trigger=TrainingTrigger.MANUAL)
    _wait_for(
        lambda: (
            TrainingJob.objects.get(id=job.id).progress.get("phase")
            not in (None, "queued", "starting", "loading data")
        ),
        "the training to be under way",
        timeout=RECOVERY_S,
        every=0.05,
    )
    worker.signal_group(
        signal.SIGKILL
    )  # main process, pool and beat: the message waits for its visibility timeout
    worker.process.wait()
    killed = time.monotonic()
    assert TrainingJob.objects.get(id=job.id).status == JobStatus.RUNNING
    # Reviews keep coming while the job hangs; automatic retraining waits for the open job.
    product = Product.objects.first()
    ReviewEvent.objects.bulk_create(
        [ReviewEvent(product=product, user=admin_user, action=ReviewAction.SUBMIT) for _ in range(3)]
    )

    replacement = start_worker(**env)
    lost = _wait_for(
        lambda: _done(TrainingJob, job.id), "the reaper to fail the lost job", timeout=STALE_S + REAP_S + 40
    )
    reaped = time.monotonic() - killed
    assert lost.status == JobStatus.FAILED and "worker lost" in lost.error
    retrain = _wait_for(
        lambda: TrainingJob.objects.filter(trigger=TrainingTrigger.AUTO).first(),
        "automatic retraining to resume",
        timeout=RECOVERY_S,
    )
    finished = _wait_done(replacement, TrainingJob, retrain.id)
    print(
        f"whole-worker kill: lost job failed {reaped:.1f}s after the kill (stale after {STALE_S}s, reaper "
        f"every {REAP_S}s, worker start included); automatic retraining {finished.status} "
        f"{time.monotonic() - killed:.1f}s after the kill"
    )
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_the_sweeper_reads_what_waits_in_redis_without_taking_it(redis):
    redis.start()
    jobs.task_send(jobs.EXPORT_RUN, 41)
    jobs.task_send(jobs.QUEUE_PRIORITIES_RECOMPUTE)
    assert jobs.queue_waiting("default") == 2
    assert set(jobs.queue_messages("default", 10)) == {
        (jobs.EXPORT_RUN, (41,)),
        (jobs.QUEUE_PRIORITIES_RECOMPUTE, ()),
    }
    assert jobs.queue_waiting("default") == 2 and jobs.queue_waiting("train") == 0
