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
# The shared cache of docker-compose (Redis). Tests may clear it and touch it outside a database
# transaction; the database cache (CACHE_URL="") is covered by its own tests.
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("TAGSTUDIO_VAR_DIR", str(_TMP / "var"))
os.environ.setdefault("MODEL_DIR", str(_TMP / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The production security defaults stay on, except TLS-only cookies: the test client speaks http.
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")

from tagstudio.settings import *  # noqa: E402,F403

# One key space per test session (its servers and workers share TAGSTUDIO_TEST_TMP): Redis outlives the
# session, and no cached figure may leak into the next one.
CACHES["default"].setdefault("KEY_PREFIX", _TMP.name)  # noqa: F405
