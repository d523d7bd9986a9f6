"""Where model versions live on disk and the settings mlcore runs with: shared by training (which writes a
version's directory) and suggestions (which loads it), so neither imports the other for them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from annotation.models import ModelVersion
from mlcore.settings import RuntimeSettings


def artifact_dir(version: ModelVersion) -> Path:
    """Where a version's model lives for this process: ``MODEL_DIR/<version>/`` (a shared volume, so the
    same id resolves on every worker machine whatever path the training machine mounted it under)."""
    return Path(settings.MODEL_DIR) / version.version


def mlcore_runtime_settings() -> RuntimeSettings:
    """The Django settings mlcore runs with (it never imports Django): embedding cache, base model,
    device and CPU threads; checkpoints load from local files only."""
    return RuntimeSettings(
        cache_dir=settings.EMBEDDING_CACHE_DIR,
        base_model=settings.TAGSTUDIO_BASE_MODEL or None,
        device=settings.TAGSTUDIO_DEVICE or None,
        num_threads=settings.TAGSTUDIO_NUM_THREADS or None,
        local_files_only=True,
    )
