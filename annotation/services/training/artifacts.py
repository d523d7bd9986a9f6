"""Model artifacts on disk.

Artifacts: mlcore writes to ``MODEL_DIR/<version>.tmp-<attempt>-<random>``; only a complete directory is
renamed to ``MODEL_DIR/<version>/`` (same filesystem, atomic), and only then does the database point at
it. A crash at any point leaves either no row pointing at the artifact or a complete artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from annotation.models import (
    ModelVersion,
    TrainingJob,
)
from annotation.services.training.data import TrainingData

ARTIFACT_META_FILE = "tagstudio.json"


def _write_artifact_meta(
    artifact: Path, *, job: TrainingJob, version: ModelVersion, data: TrainingData
) -> None:
    meta = {
        "version": version.version,
        "job_id": job.id,
        "tag_ids": data.tag_ids,
        "valid_ids": data.valid_ids,
        "train_size": len(data.records) - len(data.valid_ids),
        "data_fingerprint": data.fingerprint,
    }
    with open(artifact / ARTIFACT_META_FILE, "w", encoding="utf-8") as fh:
        json.dump(meta, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _remove_partial_artifacts(model_dir: Path, version_name: str) -> None:
    # Ours (<version>.tmp-<attempt>-<random>) and mlcore's own temporary siblings of it (.<name>.tmp-...).
    for pattern in (f"{version_name}.tmp-*", f".{version_name}.tmp-*"):
        for partial in model_dir.glob(pattern):
            shutil.rmtree(partial, ignore_errors=True)


def _publish_artifact(tmp_dir: Path, final_dir: Path) -> None:
    """Rename the complete artifact into place. A directory already there came from an attempt that died
    after its rename but before the database pointed at it: nothing uses it, so it is replaced."""
    if final_dir.exists():
        trash = final_dir.with_name(f"{final_dir.name}.tmp-replaced-{uuid.uuid4().hex[:8]}")
        final_dir.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp_dir, final_dir)
    _fsync_dir(final_dir.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _artifact_thresholds(artifact: Path) -> dict[str, float]:
    """The tagger's per-tag decision thresholds (the review queue ranks uncertainty relative to them)."""
    try:
        with open(artifact / "tagger.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        return {str(t): float(v) for t, v in zip(meta["classes"], meta["thresholds"])}
    except (OSError, KeyError, ValueError, TypeError):
        return {}
