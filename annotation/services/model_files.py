"""Where model versions live on disk and where mlcore keeps its caches: shared by training (which writes a
version's directory) and suggestions (which loads it), so neither imports the other for it."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from annotation.models import ModelVersion


def artifact_dir(version: ModelVersion) -> Path:
    """Where a version's model lives for this process: ``MODEL_DIR/<version>/`` (a shared volume, so the
    same id resolves on every worker machine whatever path the training machine mounted it under)."""
    return Path(settings.MODEL_DIR) / version.version


def point_mlcore_at_caches() -> None:
    # mlcore reads its embedding cache location from the environment (it never imports Django).
    os.environ["TAGSTUDIO_CACHE_DIR"] = str(settings.EMBEDDING_CACHE_DIR)
    if settings.TAGSTUDIO_BASE_MODEL:
        os.environ["TAGSTUDIO_BASE_MODEL"] = settings.TAGSTUDIO_BASE_MODEL
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
