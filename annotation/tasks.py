"""Celery tasks: ids in, one service call, nothing else (services hold the rules and the idempotency).

The task names are a contract with running workers: keep them as they are. Services enqueue these tasks
by name through ``annotation.jobs`` (tests/annotation/test_jobs.py checks the two agree).
"""

from __future__ import annotations

from celery import shared_task

from annotation.models import BulkAction, ExportJob, ImportJob
from annotation.services.auto_approval import auto_approval_run as auto_approval_pass
from annotation.services.bulk import bulk_action_run as bulk_action_decide
from annotation.services.exports import export_job_run
from annotation.services.imports import import_files_remove_expired as import_files_remove_past_retention
from annotation.services.imports import import_job_run
from annotation.services.jobs_recovery import jobs_resend_lost as jobs_recovery_resend_lost
from annotation.services.jobs_recovery import redelivered_job_recover
from annotation.services.queue import queue_priorities_recompute as queue_priorities_rank
from annotation.services.reviews import claims_release_expired as review_claims_release_expired
from annotation.services.suggestions import suggestions_refresh_batch
from annotation.services.training import training_jobs_reap as training_jobs_fail_stale_and_resume
from annotation.services.training.run import model_version_train


@shared_task(name="annotation.tasks.import_run", ignore_result=True)
def import_run(job_id: int) -> None:
    redelivered_job_recover(ImportJob, job_id)
    import_job_run(job_id)


@shared_task(name="annotation.tasks.model_train", ignore_result=True)
def model_train(job_id: int) -> None:
    model_version_train(job_id)


@shared_task(name="annotation.tasks.suggestions_refresh", ignore_result=True)
def suggestions_refresh(model_version_id: int, after_id: int = 0) -> None:
    suggestions_refresh_batch(model_version_id=model_version_id, after_id=after_id)


@shared_task(name="annotation.tasks.queue_priorities_recompute", ignore_result=True)
def queue_priorities_recompute() -> None:
    queue_priorities_rank()


@shared_task(name="annotation.tasks.training_jobs_reap", ignore_result=True)
def training_jobs_reap() -> None:
    training_jobs_fail_stale_and_resume()


@shared_task(name="annotation.tasks.claims_release_expired", ignore_result=True)
def claims_release_expired() -> None:
    review_claims_release_expired()


@shared_task(name="annotation.tasks.export_run", ignore_result=True)
def export_run(job_id: int) -> None:
    redelivered_job_recover(ExportJob, job_id)
    export_job_run(job_id)


@shared_task(name="annotation.tasks.jobs_resend_lost", ignore_result=True)
def jobs_resend_lost() -> None:
    jobs_recovery_resend_lost()


@shared_task(name="annotation.tasks.import_files_remove_expired", ignore_result=True)
def import_files_remove_expired() -> None:
    import_files_remove_past_retention()


@shared_task(name="annotation.tasks.bulk_action_run", ignore_result=True)
def bulk_action_run(action_id: int) -> None:
    redelivered_job_recover(BulkAction, action_id)
    bulk_action_decide(action_id)


@shared_task(name="annotation.tasks.auto_approval_run", ignore_result=True)
def auto_approval_run() -> None:
    auto_approval_pass()
