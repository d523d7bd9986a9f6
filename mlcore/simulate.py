"""Active-learning simulation: does the review order save labels?

``python -m mlcore.simulate --pool POOL.jsonl --test TEST.jsonl --strategy NAME --seed-size 100 --batch 100
--budget 3000 --seeds 3 --out DIR``

The gold tags of POOL are the oracle. Per seed: a random seed set of ``--seed-size`` products is
labelled, the tagger (``get_tagger("default")`` unless ``--tagger``) is trained on it, then repeatedly
the strategy ranks the unlabelled rest from the tagger's probabilities exactly as the app does
(:func:`mlcore.selection.rank`), the first ``--batch`` are revealed, the tagger is retrained and scored
(micro-F1 on TEST, the tagger's own decisions). Random order always runs beside the strategy on the
same seeds and the same seed sets.

Target F1 = ``--target-share`` (0.95) x the micro-F1 of the same tagger trained on the whole pool.
``labels_to_target`` is the first measured label count where the mean-over-seeds curve reaches the target.
``ratio`` = strategy labels / random labels. When random does not reach the target within the budget
the ratio is computed against the largest label count random was measured at and flagged
``ratio_is_upper_bound`` (random would need more, so the true ratio is lower); when the strategy does
not reach it, ``labels_to_target`` and ``ratio`` are null.

**Catalog view.** Reviewing a product also fixes it. At every round the *catalog micro-F1* is measured
over the whole pool, reviewed products carrying their gold tags and the others the current model's
selected tags. ``catalog_target_f1`` halves the seed model's catalog error,
``1 - (1 - catalog F1 at the seed) / 2`` (the seed round's mean over seeds); ``catalog_labels_to_target``
and ``random_catalog_labels_to_target`` are the first label counts where the mean catalog curves reach it,
``catalog_ratio`` their quotient (null unless both reach it: with the whole pool reviewed the catalog is
gold, so a budget >= the pool always gets there) and ``catalog_curve`` the mean curves
(``{"labels": [...], STRATEGY: [...], "random": [...]}``). ``--stop-when-reached`` then waits for both
targets.

Writes ``DIR/curves.csv`` (one row per strategy, seed and round), ``DIR/curves.png`` (model F1 and
catalog F1 against labels, mean and min-max band over seeds) and ``DIR/summary.json``; prints one JSON line at the end.

``--stop-when-reached`` ends the run once the strategy and random have both reached the target: the
first label count where a mean curve reaches the target does not depend on later rounds, so every
reported figure but ``final_f1`` is the same as with the full budget (``stopped_when_reached`` says so).

Records' ``category_path`` is dropped before training unless ``--keep-category-path``: on catalogs whose
tags are the category path (the shared sets) it would hand the tagger the answer.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcore.cli import runtime_from_env
from mlcore.metrics import evaluate_tag_sets
from mlcore.records import read_jsonl
from mlcore.settings import RuntimeSettings
from mlcore.types import ProductRecord

__all__ = [
    "CurvePoint",
    "SimulationConfig",
    "catalog_f1",
    "catalog_summary",
    "catalog_target",
    "labels_to_target",
    "main",
    "mean_f1_lead",
    "read_csv",
    "run_simulation",
    "summarize",
]

CONTROL = "random"
SELECTION_INPUTS = ("text", "none", "embeddings")


@dataclass(frozen=True)
class SimulationConfig:
    pool: Path
    test: Path
    strategy: str
    out: Path
    seed_size: int = 100
    batch: int = 100
    budget: int = 3000
    seeds: int = 3
    tagger: str = "default"
    target_share: float = 0.95
    keep_category_path: bool = False
    selection_features: str = "text"
    stop_when_reached: bool = False
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    def __post_init__(self) -> None:
        from mlcore.selection import STRATEGIES

        if self.strategy != "default" and self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r}: choose 'default' or one of {sorted(STRATEGIES)}")
        for name in ("seed_size", "batch", "budget", "seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.budget < self.seed_size:
            raise ValueError(f"--budget ({self.budget}) is smaller than --seed-size ({self.seed_size})")
        if not 0 < self.target_share <= 1:
            raise ValueError(f"--target-share must be in (0, 1], got {self.target_share}")
        if self.selection_features not in SELECTION_INPUTS:
            raise ValueError(
                f"--selection-features must be one of {SELECTION_INPUTS}, got {self.selection_features!r}"
            )


@dataclass(frozen=True)
class CurvePoint:
    strategy: str
    seed: int
    round: int
    labels: int
    micro_f1: float
    fit_s: float
    rank_s: float
    # Micro-F1 of the whole pool as the catalog stands: reviewed products gold, the rest the model's tags.
    # None where not measured (curves written before the catalog view).
    catalog_f1: float | None = None


def resolved_strategy(name: str) -> str:
    from mlcore.selection import DEFAULT_STRATEGY

    return DEFAULT_STRATEGY if name == "default" else name


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def load_records(path: Path, *, role: str, keep_category_path: bool) -> list[ProductRecord]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{role}: no such file {path}")
    records = list(read_jsonl(path))
    if not records:
        raise ValueError(f"--{role} {path}: no records")
    if not any(r.tags for r in records):
        raise ValueError(f"--{role} {path}: no record has tags; the simulation needs gold tags as the oracle")
    if not keep_category_path:
        records = [dataclasses.replace(r, category_path=None) for r in records]
    return records


# --------------------------------------------------------------------------------------------------
# Tagger plumbing
# --------------------------------------------------------------------------------------------------


def make_tagger(name: str, runtime: RuntimeSettings | None = None) -> Any:
    from mlcore.tagger import get_tagger

    return get_tagger(name, runtime=runtime)


def micro_f1(tagger: Any, test: Sequence[ProductRecord]) -> float:
    """Micro-F1 of the tagger's own decisions (its thresholds and post-processing) on ``test``."""
    suggestions = tagger.suggest(test, top_k=20)
    selected = [[s.tag for s in row if s.selected] for row in suggestions]
    return float(evaluate_tag_sets([r.tags for r in test], selected, per_tag=False)["micro_f1"])


def selected_tags(
    tagger: Any, records: Sequence[ProductRecord], probs: np.ndarray | None = None
) -> list[list[str]]:
    """The tags the tagger selects (its thresholds and post-processing), from ``probs`` when given."""
    if probs is not None and hasattr(tagger, "suggest_from_proba"):
        suggestions = tagger.suggest_from_proba(probs, top_k=20)
    else:
        suggestions = tagger.suggest(records, top_k=20)
    return [[s.tag for s in row if s.selected] for row in suggestions]


def catalog_f1(
    pool: Sequence[ProductRecord], labelled: np.ndarray, model_tags: Sequence[Sequence[str]]
) -> float:
    """Catalog micro-F1 over the whole pool: reviewed products carry their gold tags, the others
    ``model_tags`` (one list per unreviewed product, in pool order)."""
    unlabelled = np.flatnonzero(~labelled)
    if len(model_tags) != len(unlabelled):
        raise ValueError(f"{len(model_tags)} tag lists for {len(unlabelled)} unreviewed products")
    catalog: list[Sequence[str]] = [r.tags for r in pool]
    for i, tags in zip(unlabelled, model_tags):
        catalog[i] = tags
    return float(evaluate_tag_sets([r.tags for r in pool], catalog, per_tag=False)["micro_f1"])


def selected_matrix(tagger: Any, tags: Sequence[Sequence[str]]) -> np.ndarray:
    """The tagger's selected tags as a (products x ``classes_``) boolean matrix, the decisions ``rank``
    scores: the app ranks by the stored ``Suggestion.selected`` (post-processing included), so the
    simulation must too. A selected tag outside ``classes_`` (none has a score to rank by) is left out."""
    column = {tag: j for j, tag in enumerate(tagger.classes_)}
    out = np.zeros((len(tags), len(column)), dtype=bool)
    for i, row in enumerate(tags):
        for tag in row:
            j = column.get(tag)
            if j is not None:
                out[i, j] = True
    return out


def tagger_thresholds(tagger: Any) -> np.ndarray | float | None:
    """Per-tag thresholds in ``classes_`` order if the tagger exposes them, so ranking uses its decisions."""
    for attribute in ("thresholds_", "thresholds"):
        value = getattr(tagger, attribute, None)
        if value is None:
            continue
        if isinstance(value, dict):
            return np.array([float(value.get(c, 0.5)) for c in tagger.classes_], dtype=np.float32)
        array = np.asarray(value, dtype=np.float32)
        if array.ndim == 0 or len(array) == len(tagger.classes_):
            return np.clip(array, 1e-3, 1 - 1e-3)
    return None


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def seed_rows(n_pool: int, seed_size: int, seed: int) -> np.ndarray:
    """The random seed set of one seed: the same for the strategy and for the random control."""
    return np.random.default_rng(10_000 + seed).choice(n_pool, size=min(seed_size, n_pool), replace=False)


@dataclass
class _Curve:
    """One (strategy, seed) learning curve in progress."""

    strategy: str
    seed: int
    labelled: np.ndarray
    rank_s: float = 0.0
    done: bool = False


def run_curves(
    pool: Sequence[ProductRecord],
    test: Sequence[ProductRecord],
    *,
    strategies: Sequence[str],
    config: SimulationConfig,
    features: np.ndarray | None = None,
    texts: Sequence[str] | None = None,
    on_round: Callable[[CurvePoint], None] | None = None,
    stop_when: Callable[[list[CurvePoint]], bool] | None = None,
) -> list[CurvePoint]:
    """All (strategy, seed) curves in lockstep, one batch per round.

    Lockstep lets ``stop_when`` look at every seed's curve at the same label count. The seed-set model is
    trained once per seed and shared by the strategies (same rows, same model).
    """
    from mlcore.selection import rank, review_order

    n_pool = len(pool)
    budget = min(config.budget, n_pool)
    curves = []
    for seed in range(config.seeds):
        rows = seed_rows(n_pool, config.seed_size, seed)
        for name in strategies:
            labelled = np.zeros(n_pool, dtype=bool)
            labelled[rows] = True
            curves.append(_Curve(name, seed, labelled))
    points: list[CurvePoint] = []
    for round_no in range(math.ceil(n_pool / config.batch) + 2):
        # Round 0 is the seed model, the same for every strategy of a seed: fitted and scored once.
        seed_models: dict[int, tuple[Any, float, float, np.ndarray, np.ndarray, float]] = {}
        for curve in curves:
            if curve.done:
                continue
            unlabelled = np.flatnonzero(~curve.labelled)
            if round_no == 0 and curve.seed in seed_models:
                tagger, f1, fit_s, probs, selected, catalog = seed_models[curve.seed]
            else:
                started = time.perf_counter()
                tagger = make_tagger(config.tagger, config.runtime).fit(
                    [pool[i] for i in np.flatnonzero(curve.labelled)]
                )
                fit_s = time.perf_counter() - started
                f1 = micro_f1(tagger, test)
                # The model's scores of the unreviewed products serve both the catalog and the ranking.
                unreviewed = [pool[i] for i in unlabelled]
                probs = tagger.predict_proba(unreviewed) if len(unlabelled) else np.zeros((0, 1))
                model_tags = selected_tags(tagger, unreviewed, probs) if len(unlabelled) else []
                catalog = catalog_f1(pool, curve.labelled, model_tags)
                # The same decisions the catalog holds are the ones the ranking judges.
                selected = selected_matrix(tagger, model_tags) if len(unlabelled) else np.zeros((0, 1), bool)
                if round_no == 0:
                    seed_models[curve.seed] = (tagger, f1, fit_s, probs, selected, catalog)
            point = CurvePoint(
                curve.strategy,
                curve.seed,
                round_no,
                int(curve.labelled.sum()),
                f1,
                fit_s,
                curve.rank_s,
                catalog,
            )
            points.append(point)
            if on_round is not None:
                on_round(point)
            if curve.labelled.sum() >= budget:
                curve.done = True
                continue
            started = time.perf_counter()
            priority = rank(
                probs,
                strategy=curve.strategy,
                thresholds=None if curve.strategy == CONTROL else tagger_thresholds(tagger),
                selected=None if curve.strategy == CONTROL else selected,
                features=features[unlabelled] if features is not None else None,
                labeled_features=features[curve.labelled] if features is not None else None,
                texts=[texts[i] for i in unlabelled] if texts is not None else None,
                labeled_texts=[texts[i] for i in np.flatnonzero(curve.labelled)]
                if texts is not None
                else None,
                batch_size=config.batch,
                seed=curve.seed * 100_003 + round_no,
            )
            take = min(config.batch, budget - int(curve.labelled.sum()))
            curve.labelled[unlabelled[review_order(priority)[:take]]] = True
            curve.rank_s = time.perf_counter() - started
        if all(c.done for c in curves) or (stop_when is not None and stop_when(points)):
            break
    return points


def labels_to_target(labels: Sequence[int], f1: Sequence[float], target: float) -> int | None:
    """First label count whose F1 reaches ``target`` (None if none does)."""
    for n, value in zip(labels, f1):
        if value >= target - 1e-12:
            return int(n)
    return None


def mean_curve(
    points: Sequence[CurvePoint], strategy: str, measure: str = "micro_f1"
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Label counts with the mean, min and max of ``measure`` (``micro_f1``: the model on TEST;
    ``catalog_f1``: the pool as the catalog stands) over the seeds measured at that count."""
    by_labels: dict[int, list[float]] = {}
    for p in points:
        value = getattr(p, measure)
        if p.strategy == strategy and value is not None:
            by_labels.setdefault(p.labels, []).append(value)
    labels = sorted(by_labels)
    return (
        labels,
        [float(np.mean(by_labels[n])) for n in labels],
        [float(np.min(by_labels[n])) for n in labels],
        [float(np.max(by_labels[n])) for n in labels],
    )


def mean_f1_lead(points: Sequence[CurvePoint], strategy: str) -> float | None:
    """Mean over label counts (after the shared seed round) of the strategy's minus random's mean F1.

    The ratio looks at one point of the curves, where a batch of granularity and seed noise decide it;
    this looks at the whole of them: how much better, on average, the queue makes the tagger than
    random review does for the same number of labels.
    """
    labels, f1, _, _ = mean_curve(points, strategy)
    r_labels, r_f1, _, _ = mean_curve(points, CONTROL)
    random_at = dict(zip(r_labels, r_f1))
    seed_round = min(labels, default=None)
    leads = [value - random_at[n] for n, value in zip(labels, f1) if n in random_at and n != seed_round]
    return float(np.mean(leads)) if leads else None


def catalog_target(points: Sequence[CurvePoint], strategy: str) -> float | None:
    """Halve the catalog error of the seed model: ``1 - (1 - catalog F1 at the seed) / 2``, the seed's
    catalog F1 being the mean over seeds of the first round (the seed model, seed products gold)."""
    labels, catalog, _, _ = mean_curve(points, strategy, "catalog_f1")
    if not labels:
        return None
    return 1.0 - (1.0 - catalog[0]) / 2.0


def catalog_summary(points: Sequence[CurvePoint], *, strategy: str) -> dict[str, Any]:
    """The catalog fields of the summary: target, labels to it (strategy and random), their ratio (null
    unless both reach it; with the whole pool reviewed the catalog F1 is 1, so a budget as large as the
    pool always reaches it) and the mean curves."""
    target = catalog_target(points, strategy)
    labels, catalog, _, _ = mean_curve(points, strategy, "catalog_f1")
    r_labels, r_catalog, _, _ = mean_curve(points, CONTROL, "catalog_f1")
    reached = random_reached = None
    if target is not None:
        reached = labels_to_target(labels, catalog, target)
        random_reached = labels_to_target(r_labels, r_catalog, target)
    strategy_at, random_at = dict(zip(labels, catalog)), dict(zip(r_labels, r_catalog))
    every = sorted(set(labels) | set(r_labels))

    def rounded(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else round(value, 4)

    return {
        "catalog_target_f1": rounded(target),
        "catalog_labels_to_target": reached,
        "random_catalog_labels_to_target": random_reached,
        "catalog_ratio": round(reached / random_reached, 4) if reached and random_reached else None,
        "catalog_curve": {
            "labels": every,
            strategy: [rounded(strategy_at.get(n)) for n in every],
            **({CONTROL: [rounded(random_at.get(n)) for n in every]} if strategy != CONTROL else {}),
        },
    }


def summarize(
    points: Sequence[CurvePoint], *, strategy: str, full_f1: float, target_share: float
) -> dict[str, Any]:
    target = target_share * full_f1
    labels, f1, _, _ = mean_curve(points, strategy)
    r_labels, r_f1, _, _ = mean_curve(points, CONTROL)
    reached = labels_to_target(labels, f1, target)
    lead = mean_f1_lead(points, strategy) if strategy != CONTROL else None
    random_reached = labels_to_target(r_labels, r_f1, target)
    ratio: float | None = None
    upper_bound = False
    if reached is not None:
        if random_reached is not None:
            ratio = reached / random_reached
        elif r_labels:
            ratio, upper_bound = reached / r_labels[-1], True
    return {
        "strategy": strategy,
        "labels_to_target": reached,
        "random_labels_to_target": random_reached,
        "ratio": None if ratio is None else round(ratio, 4),
        "target_f1": round(target, 4),
        "final_f1": round(f1[-1], 4) if f1 else None,
        "ratio_is_upper_bound": upper_bound,
        "random_final_f1": round(r_f1[-1], 4) if r_f1 else None,
        "full_pool_f1": round(full_f1, 4),
        "final_labels": labels[-1] if labels else None,
        "seeds": len({p.seed for p in points if p.strategy == strategy}),
        "mean_f1_lead": None if lead is None else round(lead, 4),
        **catalog_summary(points, strategy=strategy),
    }


def write_csv(path: Path, points: Sequence[CurvePoint]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([f.name for f in dataclasses.fields(CurvePoint)])
        for p in points:
            writer.writerow(
                [
                    p.strategy,
                    p.seed,
                    p.round,
                    p.labels,
                    f"{p.micro_f1:.5f}",
                    f"{p.fit_s:.2f}",
                    f"{p.rank_s:.2f}",
                    "" if p.catalog_f1 is None else f"{p.catalog_f1:.5f}",
                ]
            )


def read_csv(path: Path) -> list[CurvePoint]:
    """The curve points a :func:`write_csv` file holds."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            CurvePoint(
                row["strategy"],
                int(row["seed"]),
                int(row["round"]),
                int(row["labels"]),
                float(row["micro_f1"]),
                float(row["fit_s"]),
                float(row["rank_s"]),
                # Curves written before the catalog view have no catalog column.
                float(row["catalog_f1"]) if row.get("catalog_f1") else None,
            )
            for row in csv.DictReader(fh)
        ]


def plot_curves(
    path: Path,
    points: Sequence[CurvePoint],
    *,
    strategies: Sequence[str],
    target: float | None,
    title: str,
    catalog_target: float | None = None,
) -> None:
    """Two panels: the model's micro-F1 on TEST and the catalog micro-F1 of the pool, against labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0), dpi=80)
    panels = [
        (axes[0], "micro_f1", target, "model micro-F1 on test"),
        (axes[1], "catalog_f1", catalog_target, "catalog micro-F1 (reviewed = gold)"),
    ]
    for ax, measure, line_at, ylabel in panels:
        for name in strategies:
            labels, values, low, high = mean_curve(points, name, measure)
            (line,) = ax.plot(labels, values, label=name, linewidth=1.8)
            ax.fill_between(labels, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        if line_at is not None:
            ax.axhline(line_at, color="grey", linestyle="--", linewidth=1, label=f"target {line_at:.3f}")
        ax.set_xlabel("labelled products")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def selection_inputs(
    pool: Sequence[ProductRecord], mode: str, runtime: RuntimeSettings | None = None
) -> tuple[np.ndarray | None, list[str] | None]:
    """What the diversity strategies see besides the probabilities, as the app passes it to ``rank``.

    ``text``: the product texts (``rank`` builds TF-IDF vectors for the rows it looks at); ``embeddings``:
    cached sentence embeddings; ``none``: the probability rows only.
    """
    from mlcore.text import product_text

    if mode == "none":
        return None, None
    if mode == "text":
        return None, [product_text(r) for r in pool]
    from mlcore.embeddings import EmbeddingCache, TextEncoder, embed_texts

    runtime = runtime or RuntimeSettings()
    encoder = TextEncoder(
        runtime.base_model,
        device=runtime.device,
        num_threads=runtime.num_threads,
        local_files_only=runtime.local_files_only,
    )
    cache_dir = runtime.embedding_cache_dir()
    vectors = embed_texts(
        [product_text(r) for r in pool], encoder, EmbeddingCache(cache_dir) if cache_dir is not None else None
    )
    return vectors, None


def run_simulation(config: SimulationConfig, *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    pool = load_records(config.pool, role="pool", keep_category_path=config.keep_category_path)
    test = load_records(config.test, role="test", keep_category_path=config.keep_category_path)
    strategy = resolved_strategy(config.strategy)
    config.out.mkdir(parents=True, exist_ok=True)
    log(f"pool {len(pool)} products, test {len(test)}; tagger {config.tagger!r}; strategy {strategy!r}")

    started = time.perf_counter()
    full_tagger = make_tagger(config.tagger, config.runtime).fit(pool)
    full_f1 = micro_f1(full_tagger, test)
    del full_tagger
    log(
        f"whole pool: micro-F1 {full_f1:.4f} (target {config.target_share * full_f1:.4f}), {time.perf_counter() - started:.0f}s"
    )

    features, texts = selection_inputs(pool, config.selection_features, config.runtime)
    strategies = [strategy] if strategy == CONTROL else [strategy, CONTROL]

    def on_round(p: CurvePoint) -> None:
        log(
            f"{p.strategy} seed {p.seed} labels {p.labels}: F1 {p.micro_f1:.4f}, catalog {p.catalog_f1:.4f} "
            f"(fit {p.fit_s:.1f}s, rank {p.rank_s:.1f}s)"
        )

    target = config.target_share * full_f1

    def both_reached(so_far: list[CurvePoint]) -> bool:
        write_csv(config.out / "curves.csv", so_far)  # partial results survive an interrupted run
        if not config.stop_when_reached:
            return False
        # The first label count where a mean-over-seeds curve reaches the target does not depend on
        # later rounds, so stopping once every strategy has one changes no reported figure but final_f1.
        # The catalog target needs the seed round of every seed; lockstep rounds guarantee it here.
        catalog_at = catalog_target(so_far, strategies[0])
        return catalog_at is not None and all(
            labels_to_target(*mean_curve(so_far, name)[:2], target) is not None
            and labels_to_target(*mean_curve(so_far, name, "catalog_f1")[:2], catalog_at) is not None
            for name in strategies
        )

    points = run_curves(
        pool,
        test,
        strategies=strategies,
        config=config,
        features=features,
        texts=texts,
        on_round=on_round,
        stop_when=both_reached,
    )
    write_csv(config.out / "curves.csv", points)

    summary = summarize(points, strategy=strategy, full_f1=full_f1, target_share=config.target_share)
    summary.update(
        {
            "tagger": config.tagger,
            "pool": len(pool),
            "test": len(test),
            "batch": config.batch,
            "budget": config.budget,
            "stopped_when_reached": bool(
                config.stop_when_reached and summary["final_labels"] < min(config.budget, len(pool))
            ),
        }
    )
    plot_curves(
        config.out / "curves.png",
        points,
        strategies=strategies,
        target=summary["target_f1"],
        catalog_target=summary["catalog_target_f1"],
        title=f"{config.pool.parent.name or config.pool.stem}: {strategy} vs random ({config.seeds} seeds)",
    )
    (config.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def parse_args(argv: Sequence[str] | None = None) -> SimulationConfig:
    parser = argparse.ArgumentParser(prog="python -m mlcore.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pool", type=Path, required=True, help="JSONL products whose gold tags are the oracle"
    )
    parser.add_argument("--test", type=Path, required=True, help="JSONL products to score micro-F1 on")
    parser.add_argument("--strategy", default="default", help="selection strategy name, or 'default'")
    parser.add_argument("--seed-size", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--budget", type=int, default=3000, help="labels at which a curve stops")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for curves.csv, curves.png, summary.json"
    )
    parser.add_argument("--tagger", default="default", help="tagger registry name (e.g. 'lexical' for speed)")
    parser.add_argument("--target-share", type=float, default=0.95)
    parser.add_argument("--keep-category-path", action="store_true", help="let the tagger read category_path")
    parser.add_argument(
        "--selection-features",
        default="text",
        choices=list(SELECTION_INPUTS),
        help="what the diversity strategies see besides probabilities: product texts (as the app passes "
        "them), sentence embeddings, or none (probability rows only)",
    )
    parser.add_argument(
        "--stop-when-reached",
        action="store_true",
        help="stop once the strategy and random both reached the target (same figures, shorter curves)",
    )
    args = parser.parse_args(argv)
    return SimulationConfig(
        pool=args.pool,
        test=args.test,
        strategy=args.strategy,
        out=args.out,
        seed_size=args.seed_size,
        batch=args.batch,
        budget=args.budget,
        seeds=args.seeds,
        tagger=args.tagger,
        target_share=args.target_share,
        keep_category_path=args.keep_category_path,
        selection_features=args.selection_features,
        stop_when_reached=args.stop_when_reached,
        runtime=runtime_from_env(os.environ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = run_simulation(config)
    print(json.dumps({k: summary[k] for k in summary}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
