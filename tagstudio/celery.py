"""The Celery app. Tasks live in annotation/tasks.py, take ids and call one service each; services enqueue
them by name through annotation/jobs.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagstudio.settings")

app = Celery("tagstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
