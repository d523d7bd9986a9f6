"""Celery tasks: ids in, one service call, nothing else (services hold the rules and the idempotency)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="annotation.tasks.import_run", ignore_result=True)
def import_run(job_id: int) -> None:
    from annotation.services.imports import import_job_run

    import_job_run(job_id)
