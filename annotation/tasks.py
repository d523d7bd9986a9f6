"""Celery tasks: ids in, one service call, nothing else (services hold the rules and the idempotency)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="annotation.tasks.import_run", ignore_result=True)
def import_run(job_id: int) -> None:
    from annotation.services.imports import import_job_run

    import_job_run(job_id)


@shared_task(name="annotation.tasks.model_train", ignore_result=True)
def model_train(job_id: int) -> None:
    from annotation.services.training import model_version_train

    model_version_train(job_id)


@shared_task(name="annotation.tasks.suggestions_refresh", ignore_result=True)
def suggestions_refresh(model_version_id: int, after_id: int = 0) -> None:
    from annotation.services.suggestions import suggestions_refresh_batch

    suggestions_refresh_batch(model_version_id=model_version_id, after_id=after_id)


@shared_task(name="annotation.tasks.queue_priorities_recompute", ignore_result=True)
def queue_priorities_recompute() -> None:
    from annotation.services.queue import queue_priorities_recompute as recompute

    recompute()


@shared_task(name="annotation.tasks.training_jobs_reap", ignore_result=True)
def training_jobs_reap() -> None:
    from annotation.services.training import training_jobs_fail_stale

    training_jobs_fail_stale()


@shared_task(name="annotation.tasks.claims_release_expired", ignore_result=True)
def claims_release_expired() -> None:
    from annotation.services.reviews import claims_release_expired as release

    release()


@shared_task(name="annotation.tasks.export_run", ignore_result=True)
def export_run(job_id: int) -> None:
    from annotation.services.exports import export_job_run

    export_job_run(job_id)
