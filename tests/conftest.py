"""Shared test helpers. Test settings (real PostgreSQL and Redis on localhost) are in tagstudio/settings_test.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.cache import cache

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TAGSTUDIO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
# 120 rows of each set of ../shared/data, in the same <set>/dev.jsonl layout (tests/data/README.md).
SHARED_DATA_SAMPLE = REPO_ROOT / "tests" / "data" / "shared_sample"


def shared_data_dir() -> Path:
    """../shared/data when it is there, else the sample inside tests/data: a test that reads real product
    data runs either way (the sample holds every set, so a test that reads all of them still sees each)."""
    return SHARED_DATA if any(SHARED_DATA.glob("*/dev.jsonl")) else SHARED_DATA_SAMPLE


@pytest.fixture
def empty_cache():
    """The review queue size, closed days' dashboard figures and the API throttle buckets live in the cache:
    a test that reads any of them starts, and leaves, with an empty cache."""
    cache.clear()
    yield
    cache.clear()
