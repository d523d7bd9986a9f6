"""Claiming a queued background job: the conditional UPDATE that makes a duplicate delivery harmless."""

from __future__ import annotations

import logging
from typing import TypeVar

from django.db import models
from django.utils import timezone

from annotation.models import JobStatus

logger = logging.getLogger(__name__)

Job = TypeVar("Job", bound=models.Model)


def queued_job_claim(model: type[Job], job_id: int) -> tuple[Job | None, bool]:
    """Move job ``job_id`` from queued to running. Returns ``(job, True)`` when this call claimed it, and
    ``(job or None, False)`` when a duplicate delivery finds it already run, running or missing."""
    claimed = model.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info(
            "%s %s is not queued (already run or missing); skipping", model._meta.verbose_name, job_id
        )
        return model.objects.filter(id=job_id).first(), False
    return model.objects.get(id=job_id), True
