"""Shared test helpers. Test settings (real PostgreSQL and Redis on localhost) are in tagstudio/settings_test.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.cache import cache

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TAGSTUDIO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def empty_cache():
    """The review queue size, closed days' dashboard figures and the API throttle buckets live in the cache:
    a test that reads any of them starts, and leaves, with an empty cache."""
    cache.clear()
    yield
    cache.clear()
