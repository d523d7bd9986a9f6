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

Writes ``DIR/curves.csv`` (one row per strategy, seed and round), ``DIR/curves.png`` (F1 against
labels, mean and min-max band over seeds) and ``DIR/summary.json``; prints one JSON line at the end.

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
        seed_models: dict[int, tuple[Any, float, float]] = {}
        for curve in curves:
            if curve.done:
                continue
            if round_no == 0 and curve.seed in seed_models:
                tagger, f1, fit_s = seed_models[curve.seed]
            else:
                started = time.perf_counter()
                tagger = make_tagger(config.tagger, config.runtime).fit(
                    [pool[i] for i in np.flatnonzero(curve.labelled)]
                )
                fit_s = time.perf_counter() - started
                f1 = micro_f1(tagger, test)
                if round_no == 0:
                    seed_models[curve.seed] = (tagger, f1, fit_s)
            point = CurvePoint(
                curve.strategy, curve.seed, round_no, int(curve.labelled.sum()), f1, fit_s, curve.rank_s
            )
            points.append(point)
            if on_round is not None:
                on_round(point)
            if curve.labelled.sum() >= budget:
                curve.done = True
                continue
            unlabelled = np.flatnonzero(~curve.labelled)
            started = time.perf_counter()
            if curve.strategy == CONTROL:  # random order needs no model scores
                probs = np.zeros((len(unlabelled), 1), dtype=np.float32)
            else:
                probs = tagger.predict_proba([pool[i] for i in unlabelled])
            priority = rank(
                probs,
                strategy=curve.strategy,
                thresholds=None if curve.strategy == CONTROL else tagger_thresholds(tagger),
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
    points: Sequence[CurvePoint], strategy: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Label counts with the mean, min and max F1 over the seeds measured at that count."""
    by_labels: dict[int, list[float]] = {}
    for p in points:
        if p.strategy == strategy:
            by_labels.setdefault(p.labels, []).append(p.micro_f1)
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
            )
            for row in csv.DictReader(fh)
        ]


def plot_curves(
    path: Path, points: Sequence[CurvePoint], *, strategies: Sequence[str], target: float, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
    for name in strategies:
        labels, f1, low, high = mean_curve(points, name)
        (line,) = ax.plot(labels, f1, label=name, linewidth=1.8)
        ax.fill_between(labels, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.3f}")
    ax.set_xlabel("labelled products")
    ax.set_ylabel("micro-F1 on test")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
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
            f"{p.strategy} seed {p.seed} labels {p.labels}: F1 {p.micro_f1:.4f} (fit {p.fit_s:.1f}s, rank {p.rank_s:.1f}s)"
        )

    target = config.target_share * full_f1

    def both_reached(so_far: list[CurvePoint]) -> bool:
        write_csv(config.out / "curves.csv", so_far)  # partial results survive an interrupted run
        if not config.stop_when_reached:
            return False
        # The first label count where a mean-over-seeds curve reaches the target does not depend on
        # later rounds, so stopping once every strategy has one changes no reported figure but final_f1.
        return all(labels_to_target(*mean_curve(so_far, name)[:2], target) is not None for name in strategies)

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
