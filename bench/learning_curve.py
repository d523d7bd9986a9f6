"""Learning-curve mode of ``bench/quality_bench.py`` (issue 19): quality with few labels, peers side by side.

    nice -n 10 .venv/bin/python bench/quality_bench.py --curve 100,300,1000,2000,full --curve-seeds 3

For each set the split is exactly the full run's (same seed, same caps), so the test part is the same.
For every seed ``k`` the training part is shuffled with ``numpy.random.default_rng([split seed, k])`` and
the first ``n`` products are the draw of size ``n``: the draws of one seed are nested (100 in 300 in
1,000 ...), as labels grow in the app. A size at or above the training part is the whole part (one run,
whatever the seeds). ``full`` is the full run itself: TagStudio on train + validation, peers on train
(their threshold on validation), seed 0 only; it gives the full-data micro-F1 of the 95 % target.

Every system trains on the same draw and is scored on the same test part:

- TagStudio (``mlcore.training.train()`` as the app calls it, via ``bench/curve_train.py``; predictions
  through ``python -m mlcore predict``): the draw, and as known tags every tag name of the set outside the
  test part (the taxonomy a team imports, examples or not; a tag only in the test part stays unknown, as
  in the full run); its own ``selected`` output is scored. It sees no other label.
- Peers: the draw to train on, and (as in the full run) the validation part to tune their one global
  threshold and, for fastText, its small grid. This is labelled data TagStudio does not get, so the
  comparison leans towards the peers.

Each (set, system, size, seed) result is a JSON file under ``.bench-cache/curve/results/`` carrying a
digest of its draw and test part: a later run reuses it (``--curve-fresh`` measures again), so a run can
be stopped, resumed and extended with more sizes, seeds, sets or systems. Every set's results are also
kept in ``bench/figures/curve_<set>.json`` (committed, next to its plot), read when the cache lacks a point:
the README's tables can be rebuilt and extended on a fresh machine without measuring again what was. Each child process is killed
after ``--curve-timeout`` seconds (an error cell, never the end of the run).

Targets (issue 19), checked for every TagStudio row run (``tagstudio`` and ``--tagstudio-name`` rows):
error (1 - micro-F1) at least 25 % below the best peer's at every numeric point (means over seeds);
micro-F1 at 1,000 labels at least 95 % of the full-data micro-F1 on at least 4 of the 7 sets; warm
training at 2,000 labels under 20 s (the slowest seed; each seed trains that draw again in a second
process with every embedding cached, and there twice: the second ``train()`` in that process is the warm
worker the app retrains in, the figure judged; the process's wall time is shown beside it). A plot per set goes to ``bench/figures/curve_<set>.png`` (+ ``.csv``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_bench as qb  # noqa: E402
from _common import last_json_line  # noqa: E402
from readme_section import replace_section  # noqa: E402

from mlcore.records import record_to_dict  # noqa: E402
from mlcore.types import ProductRecord  # noqa: E402

FULL = "full"
FIGURES_DIR = Path(__file__).resolve().parent / "figures"
README_SECTION = "curve"
README_HEADING = "## Learning curve: quality with few labels (`bench/quality_bench.py --curve`)"

# Targets of issue 19.
TARGET_REDUCTION = 0.25  # at every point of every curve, against the best peer
TARGET_SHARE = 0.95  # micro-F1 at SHARE_SIZE labels / full-data micro-F1 ...
TARGET_SHARE_SETS = 4  # ... on at least this many sets ...
TARGET_SHARE_OF = 7  # ... of the seven shared sets
SHARE_SIZE = 1000
TARGET_TRAIN_WARM_S = 20.0  # warm training at TIMING_SIZE labels, 2 cores
TIMING_SIZE = 2000

Size = int | str  # a label count, or FULL


# --------------------------------------------------------------------------------------------------------
# Draws


def parse_sizes(text: str) -> list[Size]:
    """``"100,300,full"`` -> ``[100, 300, "full"]``: positive label counts, ascending, then ``full``."""
    sizes: list[Size] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item == FULL:
            sizes.append(FULL)
            continue
        try:
            value = int(item.replace("_", ""))
        except ValueError:
            raise ValueError(f"--curve: {raw.strip()!r} is neither a label count nor 'full'") from None
        if value < 2:
            raise ValueError(f"--curve: a label count must be at least 2, got {value}")
        sizes.append(value)
    if not sizes:
        raise ValueError("--curve: no sizes given")
    counts = sorted({s for s in sizes if s != FULL})
    return [*counts, *([FULL] if FULL in sizes else [])]


def draw_order(n_train: int, split_seed: int, draw_seed: int) -> np.ndarray:
    """The order in which seed ``draw_seed`` labels the training part: a permutation of its indices."""
    return np.random.default_rng([split_seed, draw_seed]).permutation(n_train)


def curve_points(
    n_train: int, sizes: Sequence[Size], n_seeds: int, split_seed: int
) -> dict[tuple[Size, int], np.ndarray]:
    """(size, seed) -> indices into the training part. Draws of one seed are nested prefixes of its
    order; a size at or above the part is the whole part, run once (seed 0), as is ``full``."""
    points: dict[tuple[Size, int], np.ndarray] = {}
    orders = [draw_order(n_train, split_seed, k) for k in range(n_seeds)]
    for size in sizes:
        if size == FULL or size >= n_train:
            points[(size, 0)] = np.arange(n_train)
            continue
        for k in range(n_seeds):
            points[(size, k)] = orders[k][:size]
    return points


def digest(*parts: Sequence[str]) -> str:
    """A short fingerprint of id lists (what a cached result was measured on)."""
    h = hashlib.sha256()
    for part in parts:
        h.update("\x1f".join(part).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------
# Report maths


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def error_reduction(f1: float, peer_f1: float) -> float:
    """How much of the peer's error (1 - micro-F1) is gone: (err_peer - err) / err_peer."""
    if peer_f1 >= 1.0:
        return 0.0 if f1 >= 1.0 else -float("inf")
    return ((1.0 - peer_f1) - (1.0 - f1)) / (1.0 - peer_f1)


def is_tagstudio(system: str) -> bool:
    return system == qb.TAGSTUDIO or system.startswith(qb.TAGSTUDIO + "@")


def summarise(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per set and size: each system's micro-F1 mean/sd/n over seeds, the best peer (highest mean), and
    per TagStudio row its error reduction against that peer; warm training times; full-data shares."""
    by_set: dict[str, dict[str, Any]] = {}
    for p in points:
        s = by_set.setdefault(p["set"], {"sizes": {}, "n_train_part": p.get("n_train_part")})
        cell = s["sizes"].setdefault(p["size"], {"systems": {}, "n_train": {}})
        row = cell["systems"].setdefault(p["system"], {"f1": [], "errors": [], "train_warm_s": [],
                                                         "train_warm_worker_s": [], "train_s": [],
                                                         "seeds": []})  # fmt: skip
        cell["n_train"][p["seed"]] = p["n_train"]
        cell.setdefault("n_train_by_system", {})[p["system"]] = p["n_train"]
        if "error" in p:
            row["errors"].append(p["error"])
            continue
        row["f1"].append(p["metrics"]["micro_f1"])
        row["seeds"].append(p["seed"])
        info = p.get("info", {})
        if "train_warm_s" in info:
            row["train_warm_s"].append(info["train_warm_s"])
        if "train_warm_worker_s" in info:
            row["train_warm_worker_s"].append(info["train_warm_worker_s"])
        if "train_s" in info:
            row["train_s"].append(info["train_s"])
    for s in by_set.values():
        for cell in s["sizes"].values():
            for row in cell["systems"].values():
                if row["f1"]:
                    row["mean"], row["sd"] = mean_sd(row["f1"])
                    row["n"] = len(row["f1"])
            peers = [(name, row["mean"]) for name, row in cell["systems"].items()
                     if name in qb.PEERS and "mean" in row]  # fmt: skip
            cell["best_peer"] = max(peers, key=lambda pair: pair[1]) if peers else None
            for name, row in cell["systems"].items():
                if is_tagstudio(name) and "mean" in row and cell["best_peer"]:
                    row["reduction"] = error_reduction(row["mean"], cell["best_peer"][1])
        full = s["sizes"].get(FULL, {}).get("systems", {})
        share_cell = s["sizes"].get(SHARE_SIZE, {}).get("systems", {})
        s["share"] = {}
        for name, row in share_cell.items():
            if is_tagstudio(name) and "mean" in row and "mean" in full.get(name, {}):
                s["share"][name] = row["mean"] / full[name]["mean"]
    return by_set


def check_targets(
    summary: dict[str, Any],
    tagstudio_rows: Sequence[str],
    peers: Sequence[str],
    n_sets: int = TARGET_SHARE_OF,
) -> dict[str, list[str]]:
    """Per TagStudio row, the missed targets (empty: every target met)."""
    missed: dict[str, list[str]] = {}
    for ts in tagstudio_rows:
        out: list[str] = []
        share_met = 0
        share_known = 0
        for set_name, s in summary.items():
            for size, cell in s["sizes"].items():
                row = cell["systems"].get(ts)
                if row is None:
                    continue
                if "mean" not in row:
                    out.append(f"{set_name} @ {size}: {ts} failed: {row['errors'][0][:160]}")
                    continue
                if row["errors"]:
                    out.append(f"{set_name} @ {size}: {ts} failed on {len(row['errors'])} seed(s)")
                absent = [p for p in peers if "mean" not in cell["systems"].get(p, {})]
                if absent:
                    out.append(
                        f"{set_name} @ {size}: no result for {', '.join(absent)}: comparison incomplete"
                    )
                if size != FULL and "reduction" in row and row["reduction"] < TARGET_REDUCTION:
                    best = cell["best_peer"]
                    out.append(f"{set_name} @ {size}: error reduction {row['reduction']:+.1%} vs {best[0]} "
                               f"({row['mean']:.4f} vs {best[1]:.4f}) < {TARGET_REDUCTION:.0%}")  # fmt: skip
            timing = _timing_cell(s)
            if timing is not None:
                warm = _warm_figure(timing["systems"].get(ts, {}))
                if warm and max(warm) >= TARGET_TRAIN_WARM_S:
                    out.append(f"{set_name}: warm training at {TIMING_SIZE:,} labels {max(warm):.1f} s "
                               f">= {TARGET_TRAIN_WARM_S:.0f} s")  # fmt: skip
            if ts in s["share"]:
                share_known += 1
                share_met += s["share"][ts] >= TARGET_SHARE
        if share_met < TARGET_SHARE_SETS:
            out.append(f"micro-F1 at {SHARE_SIZE:,} labels >= {TARGET_SHARE:.0%} of full-data on {share_met} "
                       f"of {share_known} measured sets ({n_sets} in all); the target needs "
                       f"{TARGET_SHARE_SETS}")  # fmt: skip
        missed[ts] = out
    return missed


def _warm_figure(row: dict[str, Any]) -> list[float]:
    """The warm training seconds a row is judged on: the warm worker's where measured (results from
    before ``curve_train.py --repeat`` have only the warm process's wall time, which adds start-up)."""
    return row.get("train_warm_worker_s") or row.get("train_warm_s") or []


def _timing_cell(s: dict[str, Any]) -> dict[str, Any] | None:
    """The point the training-time target is judged on: TIMING_SIZE labels, or the whole training part
    when it is smaller (its draw is then the part, measured at its own size)."""
    if TIMING_SIZE in s["sizes"]:
        return s["sizes"][TIMING_SIZE]
    numeric = [k for k in s["sizes"] if k != FULL]
    part = s.get("n_train_part")
    if part is not None and part < TIMING_SIZE and numeric and max(numeric) >= part:
        return s["sizes"][max(numeric)]
    return None


# --------------------------------------------------------------------------------------------------------
# Running one point


@dataclasses.dataclass
class SetData:
    name: str
    split: qb.Split
    known_tags: list[str]
    n_products: int
    work: Path  # .bench-cache/curve/<set>
    valid_gold: list[set[str]]
    test_gold: list[set[str]]
    test_digest: str
    known_digest: str


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _peer_row(product: ProductRecord) -> dict[str, Any]:
    return {"id": product.id, "text": qb.peer_text(product), "tags": list(product.tags)}


def prepare_set(name: str, path: Path, args: argparse.Namespace) -> SetData:
    products = qb.load_products(path)
    split = qb.split_products(
        products, seed=args.seed, max_train=args.max_train, max_valid=args.max_valid, max_test=args.max_test
    )
    leaks = qb.split_leaks(split)
    if leaks:
        raise AssertionError(f"{name}: split leaks {leaks[:3]}")
    work = args.cache_dir / "curve" / name
    shared = work / "shared"
    # The parts every point shares: peers' validation and test files, TagStudio's test file, the taxonomy.
    _write_jsonl(shared / "peer-valid.jsonl", [_peer_row(p) for p in split.valid])
    _write_jsonl(shared / "peer-test.jsonl", [_peer_row(p) for p in split.test])
    _write_jsonl(shared / "test.jsonl", [record_to_dict(qb.without_category(p)) for p in split.test])
    # The taxonomy: every tag of the set outside the test part (what the full run's TagStudio sees). A tag
    # only in the test part stays unknown to every system, as in the full run.
    known = sorted({t for p in split.train + split.valid for t in p.tags})
    (shared / "known-tags.txt").write_text("\n".join(known) + "\n", encoding="utf-8")
    return SetData(
        name=name,
        split=split,
        known_tags=known,
        n_products=len(products),
        work=work,
        valid_gold=[set(p.tags) for p in split.valid],
        test_gold=[set(p.tags) for p in split.test],
        test_digest=digest([p.id for p in split.valid], [p.id for p in split.test]),
        known_digest=digest(known),
    )


def result_path(args: argparse.Namespace, set_name: str, system: str, size: Size, seed: int) -> Path:
    return args.cache_dir / "curve" / "results" / set_name / system / f"{size}-seed{seed}.json"


def committed_path(args: argparse.Namespace, set_name: str) -> Path:
    return args.figures_dir / f"curve_{set_name}.json"


def committed_points(args: argparse.Namespace, set_name: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The set's results kept in the repository, by (system, size as text, seed)."""
    path = committed_path(args, set_name)
    if not path.is_file():
        return {}
    points = json.loads(path.read_text(encoding="utf-8")).get("points", [])
    return {(p["system"], str(p["size"]), p["seed"]): p for p in points}


def write_committed(args: argparse.Namespace, points: Sequence[dict[str, Any]]) -> None:
    """Merge this run's points into each set's committed file (a point measured again replaces its row)."""
    by_set: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        if "error" not in p:
            by_set.setdefault(p["set"], []).append(p)
    for set_name, fresh in by_set.items():
        merged = committed_points(args, set_name)
        merged.update({(p["system"], str(p["size"]), p["seed"]): p for p in fresh})
        rows = sorted(merged.values(), key=lambda p: (p["system"], _size_key(p["size"]), p["seed"]))
        path = committed_path(args, set_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"set": set_name, "points": rows}, indent=1, default=str) + "\n",
                        encoding="utf-8")  # fmt: skip


def _size_key(size: Size) -> tuple[int, int]:
    return (1, 0) if size == FULL else (0, int(size))


def _matches(point: dict[str, Any], draw_digest: str, data: SetData, system: str) -> bool:
    return (
        point.get("draw_digest") == draw_digest
        and point.get("test_digest") == data.test_digest
        and (not is_tagstudio(system) or point.get("known_digest") == data.known_digest)
        and "error" not in point
    )


def run_peer_point(
    data: SetData, system: str, draw: Sequence[ProductRecord], point_dir: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    peer_dir = point_dir / "peer-data"
    peer_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(peer_dir / "train.jsonl", [_peer_row(p) for p in draw])
    for part in ("valid", "test"):
        link = peer_dir / f"{part}.jsonl"
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(data.work / "shared" / f"peer-{part}.jsonl")
    peer_args = argparse.Namespace(**{**vars(args), "timeout": args.curve_timeout})
    output = qb.run_peer(system, data.split, peer_dir, point_dir, peer_args)
    threshold = qb.tune_global_threshold(output.valid, data.valid_gold)
    metrics = qb.score_test_part(data.test_gold, qb.apply_threshold(output.test, threshold), output.test)
    info = {**output.info, "threshold": threshold if np.isfinite(threshold) else "top-1 only"}
    return metrics, info


def run_tagstudio_point(
    data: SetData, draw: Sequence[ProductRecord], point_dir: Path, args: argparse.Namespace, *, timing: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train through the CLI on the draw (with the taxonomy's tag names), predict the test part. With
    ``timing``, the same training runs a second time with every embedding cached (the warm figure)."""
    work = point_dir / "tagstudio"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    train_file = work / "train.jsonl"
    _write_jsonl(train_file, [record_to_dict(qb.without_category(p)) for p in draw])
    root = args.tagstudio_root or qb.REPO_ROOT
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        # One embedding cache per set, shared by every point: a draw's texts are encoded once.
        "TAGSTUDIO_CACHE_DIR": str(data.work / "embedding-cache"),
        "TAGSTUDIO_NUM_THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
        "PYTHONHASHSEED": "0",
    }
    mlcore = [sys.executable, "-m", "mlcore", "--quiet"]
    # mlcore.training.train() as the app calls it, through a script that passes the tag names in whatever
    # form the measured checkout's train() takes (see curve_train.py).
    train_cmd = [
        sys.executable,
        str(Path(__file__).resolve().parent / "curve_train.py"),
        "--train",
        str(train_file),
    ]
    if not args.curve_no_known_tags:
        train_cmd += ["--known-tags", str(data.work / "shared" / "known-tags.txt")]
    if args.tagstudio_config:
        train_cmd += ["--config", str(args.tagstudio_config)]
    runs: dict[str, qb.ChildRun] = {}

    def step(name: str, cmd: list[str]) -> None:
        run = qb.run_child(
            cmd, log_path=work / f"{name}.log", cwd=root, env=env, timeout_s=args.curve_timeout
        )
        if run.returncode != 0:
            raise qb.BenchError(f"tagstudio {name} exited with {run.returncode} after {run.wall_s:.0f}s:\n"
                                f"{qb.log_tail(work / f'{name}.log')}")  # fmt: skip
        runs[name] = run

    step("train", [*train_cmd, "--out", str(work / "model")])
    if timing:
        step("train-warm", [*train_cmd, "--repeat", "2", "--out", str(work / "model-warm")])
    predictions = work / "predictions.jsonl"
    step("predict", [*mlcore, "predict", "--model", str(work / "model"), "--input",
                     str(data.work / "shared" / "test.jsonl"), "--output", str(predictions)])  # fmt: skip
    test, selected = qb.read_tagstudio_predictions(predictions, [p.id for p in data.split.test])
    trained = last_json_line((work / "train.log").read_text(encoding="utf-8", errors="replace")) or {}
    metrics = qb.score_test_part(data.test_gold, selected, test)
    info: dict[str, Any] = {
        "train_s": runs["train"].wall_s,
        "predict_s": runs["predict"].wall_s,
        "peak_rss_mb": max(r.peak_rss_mb for r in runs.values()),
        "code_root": str(root),
        "known_tags_via": trained.get("known_tags_via"),
        "n_known_tags": trained.get("n_known_tags", 0),
        "fit_n_train": trained.get("n_train"),
        "fit_duration_s": trained.get("duration_s"),
    }
    if timing:
        info["train_warm_s"] = runs["train-warm"].wall_s
        warm = last_json_line((work / "train-warm.log").read_text(encoding="utf-8", errors="replace")) or {}
        if "warm_worker_s" in warm:
            info["train_warm_worker_s"] = warm["warm_worker_s"]
    # Free the disk: the models are not needed once scored (a 2,000-label model is tens of MB).
    for name in ("model", "model-warm"):
        shutil.rmtree(work / name, ignore_errors=True)
    return metrics, info


def run_point(
    data: SetData, system: str, size: Size, seed: int, idx: np.ndarray, args: argparse.Namespace
) -> dict[str, Any] | None:
    """One (set, system, size, seed) measurement, from the cache when it holds the same draw (None: not
    cached, and ``--curve-report-only`` forbids measuring)."""
    split = data.split
    full_tagstudio = size == FULL and is_tagstudio(system)
    draw = (split.train + split.valid) if full_tagstudio else [split.train[i] for i in idx]
    draw_digest = digest([p.id for p in draw])
    path = result_path(args, data.name, system, size, seed)
    if path.exists() and not args.curve_fresh:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if _matches(cached, draw_digest, data, system):
            return cached
    if not args.curve_fresh:
        kept = committed_points(args, data.name).get((system, str(size), seed))
        if kept is not None and _matches(kept, draw_digest, data, system):
            return kept
    if args.curve_report_only:
        return None
    base = {"set": data.name, "system": system, "size": size, "seed": seed, "n_train": len(draw),
            "n_train_part": len(split.train), "n_test": len(split.test), "draw_digest": draw_digest,
            "test_digest": data.test_digest,
            "known_digest": data.known_digest if is_tagstudio(system) else None,
            "draw_tags": len({t for p in draw for t in p.tags})}  # fmt: skip
    point_dir = data.work / "runs" / f"{size}-seed{seed}"
    timing = size != FULL and (size == TIMING_SIZE or (len(draw) == len(split.train) < TIMING_SIZE))
    started = time.perf_counter()
    try:
        if is_tagstudio(system):
            metrics, info = run_tagstudio_point(data, draw, point_dir, args, timing=timing)
        else:
            metrics, info = run_peer_point(data, system, draw, point_dir, args)
        result = {**base, "metrics": metrics, "info": info}
    except Exception as exc:  # a failing point is an error cell, never the end of the run
        result = {**base, "error": str(exc)}
    result["seconds"] = time.perf_counter() - started
    result["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return result


def tag_coverage(data: SetData, idx: np.ndarray) -> float:
    """Share of the test part's gold tag occurrences whose tag has at least one example in the draw
    (what a system that only learns from examples can reach at most)."""
    seen = {t for i in idx for t in data.split.train[i].tags}
    total = sum(len(g) for g in data.test_gold)
    return sum(1 for g in data.test_gold for t in g if t in seen) / total if total else 0.0


# --------------------------------------------------------------------------------------------------------
# Report


def _size_label(size: Size, cell: dict[str, Any], n_train_part: int | None) -> str:
    if size == FULL:
        # TagStudio's full run trains on train + validation, the peers' on train.
        by = cell.get("n_train_by_system", {})
        ts = sorted({n for s, n in by.items() if is_tagstudio(s)})
        peers = sorted({n for s, n in by.items() if not is_tagstudio(s)})
        parts = [f"TagStudio {'/'.join(f'{n:,}' for n in ts)}"] if ts else []
        parts += [f"peers {'/'.join(f'{n:,}' for n in peers)}"] if peers else []
        return "full (" + ", ".join(parts) + ")"
    if n_train_part is not None and size >= n_train_part:
        return f"{size:,} (all {n_train_part:,})"
    return f"{size:,}"


def _cell(row: dict[str, Any] | None, bold: bool = False, italic: bool = False) -> str:
    if row is None:
        return "–"
    if "mean" not in row:
        return "error"
    text = f"{row['mean']:.4f}" + (f" ± {row['sd']:.4f}" if row["n"] > 1 else "")
    if row["errors"]:
        text += f" ({len(row['errors'])} failed)"
    return f"**{text}**" if bold else f"_{text}_" if italic else text


def _systems_in(summary: dict[str, Any]) -> list[str]:
    names = {n for s in summary.values() for c in s["sizes"].values() for n in c["systems"]}
    ts = sorted((n for n in names if is_tagstudio(n)), key=lambda n: (n != qb.TAGSTUDIO, n))
    return [*ts, *(p for p in qb.PEERS if p in names)]


def render_tables(summary: dict[str, Any], coverage: dict[str, dict[Size, float]]) -> str:
    lines: list[str] = []
    systems = _systems_in(summary)
    for set_name, s in summary.items():
        sizes = list(s["sizes"])
        labels = [_size_label(z, s["sizes"][z], s.get("n_train_part")) for z in sizes]
        lines += [f"**{set_name}**: micro-F1 on the test part (mean ± sd over seeds; best peer in _italics_)", "",
                  "| system | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(sizes)]  # fmt: skip
        for system in systems:
            cells = []
            for z in sizes:
                cell = s["sizes"][z]
                best = cell["best_peer"]
                cells.append(_cell(cell["systems"].get(system), bold=system == qb.TAGSTUDIO,
                                   italic=bool(best) and best[0] == system))  # fmt: skip
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        for system in (n for n in systems if is_tagstudio(n)):
            cells = []
            for z in sizes:
                row = s["sizes"][z]["systems"].get(system, {})
                cells.append(f"{row['reduction']:+.1%}" if "reduction" in row else "–")
            lines.append(f"| error reduction of {system} vs best peer | " + " | ".join(cells) + " |")
        cov = coverage.get(set_name, {})
        lines.append("| test tag occurrences with an example in the draw | "
                     + " | ".join(f"{cov[z]:.1%}" if z in cov else "–" for z in sizes) + " |")  # fmt: skip
        lines.append("| distinct tags in the draw (mean) | " + " | ".join(
            _mean_tags(s["sizes"][z]) for z in sizes) + " |")  # fmt: skip
        lines.append("")
    ts_rows = [n for n in systems if is_tagstudio(n)]
    if ts_rows:
        lines += [f"**TagStudio: {SHARE_SIZE:,} labels against full data, and training time at "
                  f"{TIMING_SIZE:,} labels** (wall seconds, max over seeds; bench/curve_train.py. Process: start-up "
                  "and train(), cold-ish = the draw's first training, warm = every embedding cached. Warm worker: "
                  "a second train() in the warm process, as the app's worker retrains; the target is judged on it)", "",
                  "| set | system | micro-F1 @ 1,000 / full | share | train @ 2,000 cold-ish process (s) | "
                  "train @ 2,000 warm process (s) | train @ 2,000 warm worker (s) |",
                  "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for set_name, s in summary.items():
            for ts in ts_rows:
                at = s["sizes"].get(SHARE_SIZE, {}).get("systems", {}).get(ts, {})
                full = s["sizes"].get(FULL, {}).get("systems", {}).get(ts, {})
                ratio = (f"{at['mean']:.4f} / {full['mean']:.4f}" if "mean" in at and "mean" in full
                         else f"{at['mean']:.4f} / not measured" if "mean" in at else "–")  # fmt: skip
                share = f"{s['share'][ts]:.1%}" if ts in s["share"] else "–"
                timing = _timing_cell(s)
                row = timing["systems"].get(ts, {}) if timing else {}
                cold = f"{max(row['train_s']):.1f}" if row.get("train_s") else "–"
                warm = f"{max(row['train_warm_s']):.1f}" if row.get("train_warm_s") else "–"
                worker = f"{max(row['train_warm_worker_s']):.1f}" if row.get("train_warm_worker_s") else "–"
                lines.append(f"| {set_name} | {ts} | {ratio} | {share} | {cold} | {warm} | {worker} |")
        lines.append("")
    return "\n".join(lines)


def known_tags_note(points: Sequence[dict[str, Any]]) -> str:
    """How each TagStudio row received the tag names (a checkout whose train() takes neither gets none)."""
    via: dict[str, set[str]] = {}
    for p in points:
        if is_tagstudio(p["system"]) and "info" in p:
            got = p["info"].get("known_tags_via")
            via.setdefault(p["system"], set()).add(f"`train({got}=...)`" if got else "not passed")
    lines = [f"- `{system}`: tag names {' / '.join(sorted(v))}" for system, v in via.items()]
    return (
        "\nKnown tags (the set's tag names outside the test part):\n\n" + "\n".join(lines) + "\n"
        if lines
        else ""
    )


def _mean_tags(cell: dict[str, Any]) -> str:
    return cell.get("draw_tags_label", "–")


def render_timings(points: Sequence[dict[str, Any]]) -> str:
    """Seconds each system spent per set (every point, its child processes and scoring), and per point."""
    by: dict[tuple[str, str], list[float]] = {}
    for p in points:
        by.setdefault((p["set"], p["system"]), []).append(p.get("seconds", 0.0))
    sets = list(dict.fromkeys(p["set"] for p in points))
    systems = list(dict.fromkeys(p["system"] for p in points))
    lines = ["**Measurement time** (s per set: sum over its points / slowest point; measured when the point was "
             "first run, under the shared machine's load)", "",
             "| system | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]  # fmt: skip
    for system in systems:
        cells = [f"{sum(v):.0f} / {max(v):.0f}" if (v := by.get((s, system))) else "–" for s in sets]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(set_name: str, s: dict[str, Any], figures: Path) -> Path | None:
    """``curve_<set>.png`` (micro-F1 against labels, a band of ± sd per system, the full-data micro-F1
    as dashed lines) and ``curve_<set>.csv``; the plot's path, None without matplotlib."""
    figures.mkdir(parents=True, exist_ok=True)
    systems = _systems_in({set_name: s})
    numeric = [z for z in s["sizes"] if z != FULL]
    with open(figures / f"curve_{set_name}.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["system", "size", "n_train", "mean_micro_f1", "sd", "n_seeds"])
        for system in systems:
            for z in s["sizes"]:
                row = s["sizes"][z]["systems"].get(system, {})
                if "mean" in row:
                    n_train = max(s["sizes"][z]["n_train"].values())
                    out.writerow([system, z, n_train, f"{row['mean']:.4f}", f"{row['sd']:.4f}", row["n"]])
    try:
        import matplotlib
    except ImportError:
        qb.log(
            f"{set_name}: matplotlib is not installed in this interpreter, so no plot (the CSV is written)"
        )
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=80)
    for system in systems:
        xs, ys, sds = [], [], []
        for z in numeric:
            row = s["sizes"][z]["systems"].get(system, {})
            if "mean" in row:
                xs.append(max(s["sizes"][z]["n_train"].values()))
                ys.append(row["mean"])
                sds.append(row["sd"])
        if not xs:
            continue
        width = 2.4 if is_tagstudio(system) else 1.4
        (line,) = ax.plot(xs, ys, marker="o", label=system, linewidth=width)
        ax.fill_between(xs, np.subtract(ys, sds), np.add(ys, sds), color=line.get_color(), alpha=0.15, lw=0)
        full = s["sizes"].get(FULL, {}).get("systems", {}).get(system, {})
        if "mean" in full:
            ax.axhline(full["mean"], color=line.get_color(), linestyle="--", linewidth=0.9, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("labelled products (log scale); dashed: full data")
    ax.set_ylabel("micro-F1 on the test part")
    ax.set_title(f"{set_name}: learning curve")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(figures / f"curve_{set_name}.png")
    plt.close(fig)
    return figures / f"curve_{set_name}.png"


def readme_text(
    tables: str, timings: str, verdicts: dict[str, list[str]], command: str, args: argparse.Namespace,
    load: tuple[float, float], sets: Sequence[str], plots: Sequence[str],
) -> str:  # fmt: skip
    verdict_lines = []
    for ts, missed in verdicts.items():
        verdict_lines.append(f"- `{ts}`: " + ("every target met" if not missed else f"{len(missed)} missed"))
        verdict_lines += [f"  - {m}" for m in missed]
    pictures = "\n".join(f"![{name}](figures/curve_{name}.png)" for name in plots)
    if args.curve_report_only:
        # Written from cached points: the command that measured them, without the report flags.
        command = command.replace(" --curve-report-only", "").replace(" --write-readme", "")
        load_text = (
            "the machine's load during the measurement is in the run's log; this text was written from the "
            "kept points (each point's date and seconds are in bench/figures/curve_<set>.json)"
        )
    else:
        load_text = f"1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at the end"
    return f"""
Measured {dt.date.today().isoformat()} on the development machine (2 CPU cores shared with other engineers'
jobs; {load_text}; times are wall times under that load) with

```
{command}
```

Sets measured: {", ".join(sets)}. The split is the full run's (seed {args.seed}; caps {args.max_train:,} train /
{args.max_valid:,} validation / {args.max_test:,} test, category path removed), so the test part is the same.
Per seed, the training part is shuffled (`numpy.random.default_rng([split seed, seed])`) and the first *n*
products are the draw of size *n* (the draws of one seed are nested). TagStudio trains with
`mlcore.training.train()` (as the app does; `bench/curve_train.py`) on the draw only, with every tag name of
the set outside the test part passed as known tags (the taxonomy a team imports); its own selected tags are
scored. Peers train on the same draw and tune their global threshold
(and fastText its grid) on the full validation part, labels TagStudio does not get. `full` is the full run
(TagStudio on train + validation, peers on train), seed 0. Error reduction is computed from the means.
Raw results per (set, system, size, seed): `.bench-cache/curve/results/`.

{tables}
{timings}
Verdict (targets of issue 19: error reduction >= {TARGET_REDUCTION:.0%} against the best peer at every point; micro-F1 at
{SHARE_SIZE:,} labels >= {TARGET_SHARE:.0%} of full-data on >= {TARGET_SHARE_SETS} of {TARGET_SHARE_OF} sets; warm training at {TIMING_SIZE:,} labels < {TARGET_TRAIN_WARM_S:.0f} s):

{chr(10).join(verdict_lines)}

{pictures}
"""


# --------------------------------------------------------------------------------------------------------
# Entry point (called by quality_bench.main for --curve)


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    sizes = parse_sizes(args.curve)
    if args.curve_seeds < 1:
        raise SystemExit("--curve-seeds must be at least 1")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in qb.ALL_SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {', '.join(qb.ALL_SYSTEMS)}")
    ts_name = args.tagstudio_name or qb.TAGSTUDIO
    if args.tagstudio_name and not is_tagstudio(args.tagstudio_name):
        raise SystemExit(f"--tagstudio-name must be 'tagstudio' or start with 'tagstudio@', got {ts_name!r}")
    if args.curve_no_known_tags and ts_name == qb.TAGSTUDIO:
        raise SystemExit(
            "--curve-no-known-tags is an ablation: name its row, e.g. --tagstudio-name tagstudio@no-known-tags"
        )
    run_systems = [ts_name if s == qb.TAGSTUDIO else s for s in systems]
    peers = [s for s in systems if s in qb.PEERS]
    if args.sets:
        set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    else:
        set_names = sorted(p.parent.name for p in args.data_dir.glob("*/dev.jsonl"))
    paths = {name: args.data_dir / name / "dev.jsonl" for name in set_names}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"missing data files: {', '.join(missing)}")

    load_before = os.getloadavg()
    points: list[dict[str, Any]] = []
    coverage: dict[str, dict[Size, float]] = {}
    draw_tags: dict[tuple[str, Size], list[int]] = {}
    not_measured: dict[str, list[str]] = {}
    for name, path in paths.items():
        data = prepare_set(name, path, args)
        grid = curve_points(len(data.split.train), sizes, args.curve_seeds, args.seed)
        qb.log(f"{name}: train part {len(data.split.train):,}, test {len(data.split.test):,}, "
               f"{len(data.known_tags):,} known tags; {len(grid)} points x {len(run_systems)} systems")  # fmt: skip
        shares: dict[Size, list[float]] = {}
        for (size, _seed), idx in grid.items():
            if size != FULL:
                shares.setdefault(size, []).append(tag_coverage(data, idx))
        coverage[name] = {z: float(np.mean(v)) for z, v in shares.items()}
        for (size, seed), idx in grid.items():
            for system in run_systems:
                started = time.perf_counter()
                result = run_point(data, system, size, seed, idx, args)
                if result is None:
                    not_measured.setdefault(system, []).append(f"{name} @ {size} seed {seed}")
                    continue
                points.append(result)
                draw_tags.setdefault((name, size), []).append(result["draw_tags"])
                took = time.perf_counter() - started
                if "error" in result:
                    qb.log(f"{name} @ {size} seed {seed}: {system} FAILED: {result['error'][:300]}")
                else:
                    cached = " (cached)" if took < 1.0 else ""
                    qb.log(f"{name} @ {size} seed {seed}: {system} micro-F1 {result['metrics']['micro_f1']:.4f} "
                           f"in {result['seconds']:.0f}s{cached}")  # fmt: skip
        # Rows of other TagStudio versions measured earlier on the same draws stay beside this run's.
        points += _other_tagstudio_rows(args, data, grid, exclude=set(run_systems))
        _report(points, coverage, draw_tags, verdict_rows=[ts_name] if ts_name in run_systems else [],
                peers=peers, args=args, argv=argv, load=(load_before[0], os.getloadavg()[0]), final=False)  # fmt: skip
    for system, where in not_measured.items():
        qb.log(
            f"{system}: {len(where)} points not measured (--curve-report-only): {', '.join(where[:6])} ..."
        )
    return _report(points, coverage, draw_tags, verdict_rows=[ts_name] if ts_name in run_systems else [],
                   peers=peers, args=args, argv=argv, load=(load_before[0], os.getloadavg()[0]), final=True,
                   not_measured=not_measured)  # fmt: skip


def _other_tagstudio_rows(
    args: argparse.Namespace, data: SetData, grid: dict[tuple[Size, int], np.ndarray], exclude: set[str]
) -> list[dict[str, Any]]:
    root = args.cache_dir / "curve" / "results" / data.name
    found: dict[tuple[str, str, int], dict[str, Any]] = {
        key: p for key, p in committed_points(args, data.name).items() if is_tagstudio(key[0])
    }
    if root.is_dir():
        for sys_dir in sorted(root.iterdir()):
            if not is_tagstudio(sys_dir.name):
                continue
            for (size, seed), _ in grid.items():
                path = sys_dir / f"{size}-seed{seed}.json"
                if path.exists():
                    found[(sys_dir.name, str(size), seed)] = json.loads(path.read_text(encoding="utf-8"))
    wanted = {(str(size), seed) for size, seed in grid}
    return [
        p
        for (system, size, seed), p in sorted(found.items())
        if system not in exclude and (size, seed) in wanted
        and p.get("test_digest") == data.test_digest and "error" not in p
    ]  # fmt: skip


def _report(
    points: list[dict[str, Any]], coverage: dict[str, dict[Size, float]],
    draw_tags: dict[tuple[str, Size], list[int]], *, verdict_rows: list[str], peers: list[str],
    args: argparse.Namespace, argv: Sequence[str] | None, load: tuple[float, float], final: bool,
    not_measured: dict[str, list[str]] | None = None,
) -> int:  # fmt: skip
    summary = summarise(points)
    for (set_name, size), counts in draw_tags.items():
        cell = summary.get(set_name, {}).get("sizes", {}).get(size)
        if cell is not None:
            cell["draw_tags_label"] = f"{np.mean(counts):.0f}"
    tables = render_tables(summary, coverage) + known_tags_note(points)
    timings = render_timings(points)
    verdicts = check_targets(summary, verdict_rows, peers)
    for ts in verdicts:
        for system, where in (not_measured or {}).items():
            if system == ts or system in peers:
                verdicts[ts].append(f"{system}: {len(where)} points not measured (first: {where[0]})")
    write_committed(args, points)
    raw_dir = args.cache_dir / "curve"
    raw_dir.mkdir(parents=True, exist_ok=True)
    command = "nice -n 10 .venv/bin/python bench/quality_bench.py " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:]
    )
    (raw_dir / ("curve-latest.json" if final else "curve-partial.json")).write_text(
        json.dumps({"command": command, "points": points, "verdicts": verdicts}, indent=1, default=str),
        encoding="utf-8",
    )
    if not final:
        return 0
    plots = []
    for set_name, s in summary.items():
        plot = write_plot(set_name, s, args.figures_dir)
        if plot is not None:
            qb.log(f"{set_name}: plot {plot}")
            plots.append(set_name)
    print(tables)
    print(timings)
    for ts, missed in verdicts.items():
        if missed:
            print(f"{ts}: TARGETS MISSED ({len(missed)}):\n" + "\n".join(f"  - {m}" for m in missed))
        else:
            print(f"{ts}: every target met.")
    if args.write_readme:
        section = readme_text(tables, timings, verdicts, command.strip(), args, load, list(summary), plots)
        replace_section(README_SECTION, README_HEADING, section, args.readme)
        qb.log(f"wrote the {README_SECTION} section of {args.readme}")
    return 1 if any(verdicts.values()) else 0
