"""Training runs: config, seeding, validation slice, metrics and an atomically written artifact.

An artifact is one directory::

    tagger.json      kind, config, label map (classes), thresholds, post-processing
    <weights>        the tagger's own files (parts.pkl + head.pt, lexical.pkl, ...)
    training.json    TrainConfig, base model name + fingerprint, data fingerprint, device, duration,
                     sizes, library versions
    metrics.json     metrics on the validation slice (mlcore.metrics)
    validation_scores.json
                     per validation product: its gold tags and the top-20 scored tags [tag, score,
                     selected] (the evidence auto-approval's score cuts are found from); absent when
                     ``refit_on_all`` replaced the evaluated fit
    out_of_fold_scores.json
                     the same for the saved tagger's own training products, scored by the models it
                     fitted without them (the default tagger's cross-fitting; see the tagger's
                     ``out_of_fold_suggestions``); absent for a tagger without such models

It is written to a temporary sibling directory and renamed into place, so a reader never sees half
an artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from mlcore.autoapprove import OUT_OF_FOLD_SCORES_FILE, VALIDATION_SCORES_FILE
from mlcore.data import split_records
from mlcore.metrics import evaluate_tag_sets
from mlcore.settings import RuntimeSettings
from mlcore.tagger import available_taggers, get_tagger, tagger_config_class
from mlcore.tagger.base import ProgressCallback
from mlcore.types import ProductRecord, Taxonomy, TrainResult

__all__ = ["TrainConfig", "data_fingerprint", "set_seed", "train"]


@dataclass
class TrainConfig:
    """What to train. ``tagger_config``: the keys of the tagger's config dataclass
    (:mod:`mlcore.tagger.config`), checked here so an unknown key fails before any training."""

    tagger: str = "default"
    seed: int = 13
    valid_fraction: float = 0.1
    min_valid: int = 1
    tagger_config: dict[str, Any] = field(default_factory=dict)
    metrics_per_tag: bool = True
    # After measuring on the validation slice, fit again on every labelled record (slice included). The
    # saved metrics then describe the first fit; use it when no later comparison on the slice is needed.
    refit_on_all: bool = False

    def __post_init__(self) -> None:
        if self.tagger not in available_taggers():
            raise ValueError(f"unknown tagger {self.tagger!r}; available: {', '.join(available_taggers())}")
        if not 0.0 < self.valid_fraction < 0.9:
            raise ValueError(f"valid_fraction must be in (0, 0.9), got {self.valid_fraction}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.tagger_config, dict):
            raise ValueError("tagger_config must be a JSON object")
        tagger_config_class(self.tagger).from_dict(self.tagger_config)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {sorted(unknown)} (known: {sorted(known)})")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        return cls.from_dict(data)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) before anything random is built."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def data_fingerprint(records: Sequence[ProductRecord]) -> str:
    """Hash of the training data (ids, texts, tags) in id order: equal data, equal fingerprint."""
    digest = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.id):
        payload = [r.id, r.title, r.description, r.brand, r.category_path, r.attributes, sorted(r.tags)]
        digest.update(json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:20]


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return out


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())


def evaluate_tagger(
    tagger: Any,
    records: Sequence[ProductRecord],
    *,
    per_tag: bool = True,
    suggestions: Sequence | None = None,
) -> dict[str, Any]:
    if suggestions is None:
        suggestions = tagger.suggest(list(records), top_k=20)
    return evaluate_tag_sets(
        [r.tags for r in records],
        [[s.tag for s in row if s.selected] for row in suggestions],
        [[s.tag for s in row] for row in suggestions],
        per_tag=per_tag,
    )


def train(
    records: Sequence[ProductRecord],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    valid_ids: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    runtime: RuntimeSettings | None = None,
    taxonomy: Taxonomy | None = None,
) -> TrainResult:
    """Train a tagger on ``records`` and write its artifact to ``out_dir`` (replaced if it exists).

    The validation slice is ``valid_ids`` when given (so two versions can be compared on the same
    products), else a seeded slice of ``config.valid_fraction`` whole title groups. Products without
    tags are ignored. Raises ValueError for no labelled records, a single tag overall, or a validation
    slice that leaves nothing to train on. ``runtime``: embedding cache dir, base model (when the tagger
    config names none), device and threads. ``taxonomy``: every tag the model may suggest with parents and
    aliases (the app's imported taxonomy), passed to the tagger's ``fit``: tags with no labelled product
    yet are suggested from their words (see the tagger).
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    set_seed(config.seed)
    labelled = [r for r in records if r.tags]
    if not labelled:
        raise ValueError(f"no labelled records: none of the {len(records)} records has tags")
    if len({t for r in labelled for t in r.tags}) < 2:
        raise ValueError("only one tag overall: a tagger needs at least two different tags")
    if valid_ids is not None:
        train_part, valid_part = split_records(labelled, valid_ids=valid_ids)
    else:
        train_part, valid_part = split_records(labelled, config.valid_fraction, config.seed)
    if not train_part:
        raise ValueError("the validation slice covers every labelled record: nothing left to train on")
    if len({t for r in train_part for t in r.tags}) < 2:
        raise ValueError("the training part has a single tag overall: a tagger needs at least two")

    tagger = get_tagger(config.tagger, config.tagger_config, runtime=runtime)
    tagger.fit(train_part, progress=progress, taxonomy=taxonomy)
    metrics: dict[str, Any] = {}
    validation_scores: list[dict[str, Any]] | None = None
    if valid_part:
        if progress is not None:
            progress("evaluate", 0, len(valid_part))
        valid_suggestions = tagger.suggest(list(valid_part), top_k=20)
        metrics = evaluate_tagger(
            tagger, valid_part, per_tag=config.metrics_per_tag, suggestions=valid_suggestions
        )
        # Kept only when the saved tagger is the one scored: a refit has seen the slice.
        if not config.refit_on_all:
            validation_scores = [
                {
                    "id": r.id,
                    "tags": list(r.tags),
                    "scores": [[s.tag, round(float(s.score), 6), bool(s.selected)] for s in row],
                }
                for r, row in zip(valid_part, valid_suggestions)
            ]
        if progress is not None:
            progress("evaluate", len(valid_part), len(valid_part))

    if config.refit_on_all and valid_part:
        tagger = get_tagger(config.tagger, config.tagger_config, runtime=runtime)
        tagger.fit(labelled, progress=progress, taxonomy=taxonomy)
    # The saved tagger's own products scored by its out-of-fold models (the default tagger cross-fits).
    tags_of = {r.id: r.tags for r in labelled}
    out_of_fold_scores = [
        {
            "id": product_id,
            "tags": list(tags_of[product_id]),
            "scores": [[s.tag, round(float(s.score), 6), bool(s.selected)] for s in row],
        }
        for product_id, row in tagger.out_of_fold_suggestions(top_k=20)
    ]

    import torch

    if runtime is not None and runtime.device:
        device = torch.device(runtime.device).type
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    info = getattr(tagger, "info_", {}) or {}
    duration = time.perf_counter() - started
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        tagger.save(tmp)
        _write_json(
            tmp / "training.json",
            {
                "config": asdict(config),
                "tagger": config.tagger,
                "base_model": info.get("base_model"),
                "base_model_fingerprint": info.get("base_model_fingerprint"),
                "data_fingerprint": data_fingerprint(labelled),
                "n_train": len(labelled) if config.refit_on_all else len(train_part),
                "refit_on_all": config.refit_on_all,
                "n_valid": len(valid_part),
                "valid_ids": [r.id for r in valid_part],
                "device": device,
                "duration_s": duration,
                "tagger_info": info,
                "versions": _versions(),
                "created_unix": time.time(),
            },
        )
        _write_json(tmp / "metrics.json", metrics)
        if validation_scores is not None:
            _write_json(tmp / VALIDATION_SCORES_FILE, validation_scores)
        if out_of_fold_scores:
            _write_json(tmp / OUT_OF_FOLD_SCORES_FILE, out_of_fold_scores)
        if out_dir.exists():
            trash = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, trash)
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TrainResult(
        path=str(out_dir),
        metrics=metrics,
        n_train=len(train_part),
        n_valid=len(valid_part),
        device=device,
        duration_s=duration,
    )
