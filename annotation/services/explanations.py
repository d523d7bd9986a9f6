"""Why the model suggests each chip of a review card: mlcore's explanations, read for the card.

The card's model version is loaded from ``MODEL_DIR/<version>/`` (``mlcore.inference.load_model`` keeps it
cached per process) and ``mlcore.explain.explain_many`` explains all the card's suggestion chips at once.
Explanations are a help, never a condition: a version without an artifact on this machine (none trained
yet, a deleted directory), or any failure while explaining, gives a card without reasons, not an error.

Nor does a card wait for a model to load: the first card a web process shows with a version starts
loading it in a background thread (importing scikit-learn and reading the artifact took ~20 s per
gunicorn worker on a loaded 2-core machine in ``bench/review_bench.py``) and waits at most
``REVIEW_EXPLAIN_LOAD_WAIT_SECONDS`` (default 0: not at all) for it; until it is ready, cards come
without reasons.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.selectors.review import ReviewCard
from annotation.services.model_files import artifact_dir, mlcore_runtime_settings
from mlcore.types import ProductRecord

logger = logging.getLogger(__name__)

# Most reasons a chip cites per kind (mentions, neighbours, lexical words): the card has room for a few.
REASON_ITEMS = 3

# Artifacts this process loaded (or is loading): (path, tagger.json mtime) -> the load's thread and model.
_loads: dict[tuple[str, float], _ModelLoad] = {}
_loads_lock = threading.Lock()


class _ModelLoad:
    """One artifact loading in a background thread; ``model`` is None until it is ready (or if it failed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.model: Any = None
        self.thread = threading.Thread(target=self._run, name=f"explain-load-{directory.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            # Imported here, not at module top: mlcore.inference pulls in scikit-learn and torch, which the
            # web start-up must not load (tests/test_import_graph.py); only a process showing a model does.
            from mlcore.explain import explain_many
            from mlcore.inference import load_model

            model = load_model(str(self.directory), runtime=mlcore_runtime_settings())
            # The first explanation builds per-model tables (feature names, carriers: ~1 s in the review
            # bench): build them here, not on an operator's card.
            if len(model.classes_):
                explain_many(model, [ProductRecord(id="", title="warm up")], [[model.classes_[0]]])
            self.model = model
        except Exception:  # a reason is a help: cards go on without them
            logger.exception("loading %s for review-card explanations failed", self.directory)


def _model_for(directory: Path) -> Any:
    """The loaded model of ``directory``, or None while it loads in the background (or cannot load)."""
    try:
        key = (str(directory), (directory / "tagger.json").stat().st_mtime)
    except OSError:  # no artifact on this machine
        return None
    with _loads_lock:
        load = _loads.get(key)
        if load is None:
            for old in [k for k in _loads if k[0] == key[0]]:  # a re-published artifact replaces the old
                del _loads[old]
            load = _loads[key] = _ModelLoad(directory)
    load.thread.join(timeout=float(getattr(settings, "REVIEW_EXPLAIN_LOAD_WAIT_SECONDS", 0.0)))
    return load.model


@dataclass(frozen=True, slots=True)
class ChipReason:
    """One chip's explanation: ``summary`` in a few words, and the parts the card can show on demand."""

    summary: str
    title_spans: tuple[tuple[int, int], ...] = ()  # offsets in product.title that mention the tag
    neighbours: tuple[str, ...] = ()  # titles of similar approved products carrying the tag
    words: tuple[str, ...] = ()  # the strongest lexical words


@dataclass(slots=True)
class CardReasons:
    """Reasons by tag id (empty when the model is not loaded here yet, or cannot be), what explaining cost
    (0 when nothing was explained) and how long the card waited for its model to load."""

    by_tag: dict[int, ChipReason] = field(default_factory=dict)
    seconds: float = 0.0
    load_wait_seconds: float = 0.0

    def server_timing(self) -> str:
        """What the reasons cost as a ``Server-Timing`` value ('' when nothing was explained or waited for):
        ``explain`` is the explaining alone, ``explain-load`` the wait for the model. The HTML card and the
        REST card send the same entries, so browser dev tools and the review bench read both alike."""
        entries = [
            f"{name};dur={seconds * 1000:.2f}"
            for name, seconds in (("explain", self.seconds), ("explain-load", self.load_wait_seconds))
            if seconds
        ]
        return ", ".join(entries)


def _record(card: ReviewCard) -> ProductRecord:
    product = card.product
    return ProductRecord(
        id=str(product.pk),
        title=product.title,
        description=product.description or "",
        brand=product.brand or None,
        category_path=tuple(product.category_path) if product.category_path else None,
        attributes=product.attributes or None,
        lang=product.lang or None,
    )


def _chip_reason(explanation: dict[str, Any]) -> ChipReason:
    return ChipReason(
        summary=explanation["summary"],
        title_spans=tuple((m["start"], m["end"]) for m in explanation["mentions"] if m["field"] == "title"),
        neighbours=tuple(n["title"] for n in explanation["neighbours"] if n["title"]),
        words=tuple(t["term"] for t in explanation["lexical"]),
    )


def review_card_reasons(card: ReviewCard) -> CardReasons:
    """Why each suggestion chip of ``card`` is suggested, by tag id; empty when there is no model to ask."""
    version = card.model_version
    suggestions = card.suggestions
    if version is None or not suggestions:
        return CardReasons()
    started = time.perf_counter()
    # The model's own name for each tag (the names it was trained with), else the tag's current name.
    trained_name = {tag_id: name for name, tag_id in (version.config or {}).get("tag_ids", {}).items()}
    names = [trained_name.get(chip.tag_id, chip.name) for chip in suggestions]
    model = _model_for(artifact_dir(version))
    if model is None:
        return CardReasons(load_wait_seconds=time.perf_counter() - started)
    started = time.perf_counter()
    try:
        # Imported here, not at module top, for the reason _ModelLoad gives (a loaded model imported it).
        from mlcore.explain import explain_many

        explanations = explain_many(model, [_record(card)], [names], max_items=REASON_ITEMS)[0]
    except Exception:  # a reason is a help: the card must render whatever the artifact or model does
        logger.exception("explaining the card of product %s with %s failed", card.product.pk, version)
        return CardReasons()
    by_tag = {
        chip.tag_id: _chip_reason(explanation.to_dict())
        for chip, explanation in zip(suggestions, explanations)
        if explanation.known
    }
    return CardReasons(by_tag=by_tag, seconds=time.perf_counter() - started)
