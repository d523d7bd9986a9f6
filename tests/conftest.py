"""Shared test helpers. Test settings (real PostgreSQL and Redis on localhost) are in tagstudio/settings_test.py."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TAGSTUDIO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
