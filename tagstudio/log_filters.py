"""Logging filters for the project's LOGGING setting."""

from __future__ import annotations

import logging


class ClientErrorWithoutTraceback(logging.Filter):
    """A refused request (4xx: a 403, a 404) logs one line, not the traceback of the exception behind it.

    Django's request handler logs PermissionDenied and Http404 with ``exc_info``; that traceback says
    nothing about the server (the request was wrong or not allowed) and buries real errors. 5xx keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
