"""A favicon for the pages and /favicon.ico; a refused request logs one line, not a traceback (issue 15)."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from django.test import Client

from tagstudio.log_filters import ClientErrorWithoutTraceback

pytestmark = pytest.mark.django_db


def test_pages_link_the_favicon_and_favicon_ico_answers(client, operator):
    client.force_login(operator)
    page = client.get("/review/").content.decode()
    assert '<link rel="icon" href="/static/annotation/favicon.svg" type="image/svg+xml">' in page
    icon = Client().get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")


@pytest.fixture
def console_log():
    """What the project's console handler (settings.LOGGING) writes while the test runs."""
    handler = next(
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, ClientErrorWithoutTraceback) for f in handler.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def test_a_403_logs_one_line_without_traceback(client, operator, console_log):
    client.force_login(operator)
    assert client.get("/admin/login/").status_code == 403  # PermissionDenied (annotation/admin.py)
    assert client.get("/models/").status_code == 403
    lines = [line for line in console_log.getvalue().splitlines() if line.strip()]
    forbidden = [line for line in lines if "Forbidden" in line]
    assert len(forbidden) == 2, lines
    assert "Traceback" not in console_log.getvalue()


def test_a_500_keeps_its_traceback():
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "boom", (), None)
    record.status_code = 500
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert ClientErrorWithoutTraceback().filter(record)
    assert record.exc_info is not None
