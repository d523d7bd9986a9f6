"""Training requests: debounce, triggers, the review-count hook, stale jobs, clear failures on bad data."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import (
    JobStatus,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    TagSource,
    TrainingJob,
    TrainingTrigger,
)
from annotation.services.training import (
    model_version_train,
    reviews_submitted_hook,
    training_job_request,
    training_jobs_fail_stale,
)
from annotation.taxonomy.resolver import TagResolver
from tests.annotation.training_support import catalog_load, demo_rows

pytestmark = pytest.mark.usefixtures("in_memory_broker")


@pytest.mark.django_db
def test_second_request_returns_the_open_job():
    first = training_job_request(trigger=TrainingTrigger.MANUAL)
    second = training_job_request(trigger=TrainingTrigger.API)
    assert second.id == first.id
    assert TrainingJob.objects.count() == 1
    assert first.status == JobStatus.QUEUED


@pytest.mark.django_db
def test_request_after_the_open_job_finished_creates_a_new_one():
    first = training_job_request(trigger=TrainingTrigger.MANUAL)
    TrainingJob.objects.filter(id=first.id).update(status=JobStatus.SUCCEEDED)
    second = training_job_request(trigger=TrainingTrigger.MANUAL)
    assert second.id != first.id


@pytest.mark.django_db
def test_unknown_trigger_is_refused():
    with pytest.raises(ValueError, match="trigger must be one of"):
        training_job_request(trigger="cron")


@pytest.mark.django_db
def test_review_hook_requests_training_after_the_threshold(settings, operator):
    settings.RETRAIN_AFTER_REVIEWS = 3
    products = catalog_load(demo_rows(tagged=0, untagged=5))

    def submit(product: Product) -> None:
        ReviewEvent.objects.create(product=product, user=operator, action=ReviewAction.SUBMIT)

    submit(products[0])
    submit(products[1])
    ReviewEvent.objects.create(product=products[2], user=operator, action=ReviewAction.SKIP)  # not a submit
    assert reviews_submitted_hook() is None
    submit(products[2])
    job = reviews_submitted_hook()
    assert job is not None and job.trigger == TrainingTrigger.AUTO
    # Debounced: more submits while it is open ask for nothing new.
    submit(products[3])
    assert reviews_submitted_hook() is None
    assert TrainingJob.objects.count() == 1
    # After it started, the count starts again from zero.
    TrainingJob.objects.filter(id=job.id).update(
        status=JobStatus.SUCCEEDED, started_at=timezone.now() + timedelta(seconds=1)
    )
    assert reviews_submitted_hook() is None


@pytest.mark.django_db
def test_review_hook_disabled_by_zero(settings, operator):
    settings.RETRAIN_AFTER_REVIEWS = 0
    product = catalog_load(demo_rows(tagged=0, untagged=1))[0]
    ReviewEvent.objects.create(product=product, user=operator, action=ReviewAction.SUBMIT)
    assert reviews_submitted_hook() is None


@pytest.mark.django_db
def test_stale_running_job_is_failed_and_a_new_training_can_start(settings):
    settings.TRAINING_STALE_AFTER_SECONDS = 30
    job = training_job_request(trigger=TrainingTrigger.MANUAL)
    old = timezone.now() - timedelta(seconds=120)
    TrainingJob.objects.filter(id=job.id).update(
        status=JobStatus.RUNNING,
        started_at=old,
        progress={"attempt": 1, "worker": "elsewhere:1", "heartbeat_at": old.isoformat()},
    )
    assert training_jobs_fail_stale() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "worker lost" in job.error
    assert training_job_request(trigger=TrainingTrigger.MANUAL).id != job.id


@pytest.mark.django_db
def test_running_job_with_fresh_heartbeat_is_left_alone():
    job = training_job_request(trigger=TrainingTrigger.MANUAL)
    TrainingJob.objects.filter(id=job.id).update(
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
        progress={"attempt": 1, "worker": "elsewhere:1", "heartbeat_at": timezone.now().isoformat()},
    )
    assert training_jobs_fail_stale() == 0
    assert training_job_request(trigger=TrainingTrigger.MANUAL).id == job.id


@pytest.mark.django_db(transaction=True)
def test_finished_job_delivered_again_does_nothing():
    job = training_job_request(trigger=TrainingTrigger.MANUAL, enqueue=False)
    TrainingJob.objects.filter(id=job.id).update(status=JobStatus.SUCCEEDED)
    assert model_version_train(job.id) is None
    assert model_version_train(987654321) is None  # unknown id: logged, nothing raised
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_training_without_labels_fails_clearly_and_changes_nothing():
    catalog_load(demo_rows(tagged=0, untagged=10))
    job = training_job_request(trigger=TrainingTrigger.MANUAL, enqueue=False)
    finished = model_version_train(job.id)
    assert finished.status == JobStatus.FAILED
    assert "No approved tags to train on" in finished.error
    assert finished.finished_at is not None and "failed" in finished.log
    assert not ModelVersion.objects.exists()
    assert Product.objects.filter(needs_suggestion=True).count() == 10  # untouched
    assert training_job_request(trigger=TrainingTrigger.MANUAL).id != job.id  # a new one can start


@pytest.mark.django_db(transaction=True)
def test_training_with_a_single_tag_fails_clearly():
    products = catalog_load(demo_rows(tagged=0, untagged=6))
    tag_ids, _ = TagResolver().resolve(["dresses"], create=True)
    ProductTag.objects.bulk_create(
        [ProductTag(product=p, tag_id=tag_ids["dresses"], source=TagSource.REVIEW) for p in products]
    )
    job = training_job_request(trigger=TrainingTrigger.MANUAL, enqueue=False)
    finished = model_version_train(job.id)
    assert finished.status == JobStatus.FAILED
    assert "at least two" in finished.error and "dresses" in finished.error
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_inactive_tags_do_not_count_as_training_labels():
    products = catalog_load(demo_rows(tagged=0, untagged=6))
    tag_ids, _ = TagResolver().resolve(["dresses", "retired"], create=True)
    ProductTag.objects.bulk_create(
        [ProductTag(product=p, tag_id=tag_ids["dresses"], source=TagSource.REVIEW) for p in products]
        + [ProductTag(product=products[0], tag_id=tag_ids["retired"], source=TagSource.REVIEW)]
    )
    from annotation.models import Tag

    Tag.objects.filter(id=tag_ids["retired"]).update(is_active=False)
    job = training_job_request(trigger=TrainingTrigger.MANUAL, enqueue=False)
    finished = model_version_train(job.id)
    assert finished.status == JobStatus.FAILED and "at least two" in finished.error


@pytest.mark.django_db(transaction=True)
def test_dead_owner_on_this_host_is_taken_over(settings):
    """A redelivered task whose first attempt died (dead pid here) restarts it as attempt 2."""
    catalog_load(demo_rows(tagged=0, untagged=3))  # no labels: the restarted attempt then fails clearly
    job = training_job_request(trigger=TrainingTrigger.MANUAL, enqueue=False)
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    TrainingJob.objects.filter(id=job.id).update(
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
        progress={
            "attempt": 1,
            "worker": f"{socket.gethostname()}:{dead_pid}",
            "heartbeat_at": timezone.now().isoformat(),
        },
    )
    finished = model_version_train(job.id)
    assert finished.progress["attempt"] == 2
    assert "was lost; restarting" in finished.log
    assert finished.status == JobStatus.FAILED and "No approved tags" in finished.error
