"""Test settings: the real PostgreSQL and Redis on localhost (addresses overridable by environment).

These defaults are set before Django reads its settings (pytest-django configures Django after the
initial conftest files are imported).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="tagstudio-tests-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagstudio.settings")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tagstudio")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("TAGSTUDIO_VAR_DIR", str(_TMP / "var"))
os.environ.setdefault("MODEL_DIR", str(_TMP / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests exercise the production security defaults except TLS-only cookies (the test client speaks http).
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TAGSTUDIO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
