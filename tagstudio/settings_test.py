"""Settings for the test suite: production settings with test defaults for what the environment leaves unset.

The real PostgreSQL and Redis on localhost (overridable by DATABASE_URL / CELERY_BROKER_URL); a
temporary var/ and MODEL_DIR per test session. pytest-django imports this before any conftest runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP = Path(os.environ.get("TAGSTUDIO_TEST_TMP") or tempfile.mkdtemp(prefix="tagstudio-tests-"))
os.environ["TAGSTUDIO_TEST_TMP"] = str(_TMP)  # subprocesses (workers, servers) share the same folders
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tagstudio")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("TAGSTUDIO_VAR_DIR", str(_TMP / "var"))
os.environ.setdefault("MODEL_DIR", str(_TMP / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The production security defaults stay on, except TLS-only cookies: the test client speaks http.
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")

from tagstudio.settings import *  # noqa: E402,F403
