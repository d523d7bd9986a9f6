"""Ranking 1,000,000 products from stored probabilities: under 10 s and under 2 GB RSS on 2 cores.

    python bench/rank_bench.py [--rows 1000000] [--tags 500] [--strategy dense_uncertain] [--selected]
                               [--write-readme]

The probabilities are generated once (seeded) into ``.bench-cache/rank/`` as a float32 ``.npy`` file and
read back the way the app reads stored scores: in row blocks, never as one resident 2 GB array (1M x 500
float32 is 2.0 GB by itself, so holding it would break the memory target before ranking starts). The
reader copies the rows it is asked for into fresh buffers with plain reads (no memory map), so RSS counts
what ranking holds, not the page cache.

Distribution (a tagger's output on a long-tailed catalog): each product has 1 + Poisson(1.5) gold tags
drawn from a Zipf(1.1) tag frequency; the model gives them logits ~ N(2, 1.5) (mostly confident, some
missed), 0-3 confusable tags per product get logits ~ N(-0.5, 1) and every other cell ~ N(-7, 1.5).
Per-tag thresholds are drawn in [0.2, 0.5] as a tuned tagger's would be. ``--selected`` also passes the
tagger's decisions the way the app does (``Suggestion.selected`` as a sparse CSR matrix, built before the
clock starts): ``p >= threshold`` with one in twenty products' best non-selected tag added, as closure
or an exclusive group's ``exactly_one`` would.

Prints the figures, and exits 1 when a target is missed. ``--write-readme`` records them in the
``rank`` section of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, readme_section, also when loaded by path
from _common import last_json_line, peak_rss_mb  # noqa: E402
from readme_section import replace_section  # noqa: E402

from mlcore.selection import DEFAULT_STRATEGY, STRATEGIES, rank, review_order  # noqa: E402

TARGET_S = 10.0
TARGET_RSS_BYTES = 2 * 1000**3
CACHE = ROOT / ".bench-cache" / "rank"


class NpyRows:
    """Row access to a 2-D ``.npy`` file by plain reads into fresh buffers (no memory map)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        header = np.load(path, mmap_mode="r")
        self.shape = header.shape
        self.dtype = header.dtype
        self._offset = header.offset
        del header

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        if isinstance(rows, slice) and rows.step in (None, 1):
            # A block of consecutive rows: one read into a fresh buffer (no mapping left behind).
            start, stop, _ = rows.indices(self.shape[0])
            out = np.empty((max(stop - start, 0), self.shape[1]), dtype=self.dtype)
            with open(self.path, "rb") as fh:
                fh.seek(self._offset + start * self.shape[1] * self.dtype.itemsize)
                fh.readinto(memoryview(out).cast("B"))
            return out
        # Scattered rows (a few thousand candidates): one positioned read per row. Through a memory map,
        # the kernel's fault-around and readahead pull whole neighbourhoods of the file into this process
        # (5,000 rows of 2 kB made 1.7 GB of resident file pages), which is the page cache, not ranking.
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        row_bytes = self.shape[1] * self.dtype.itemsize
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        view = memoryview(out).cast("B")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, row in enumerate(rows):
                if not 0 <= row < self.shape[0]:
                    raise IndexError(f"row {row} out of range for {self.shape[0]} rows")
                chunk = view[i * row_bytes : (i + 1) * row_bytes]
                if os.preadv(fd, [chunk], self._offset + int(row) * row_bytes) != row_bytes:
                    raise OSError(f"{self.path}: short read at row {row}")
        finally:
            os.close(fd)
        return out


def generate(path: Path, rows: int, tags: int, seed: int = 0) -> None:
    """Write the probabilities block by block (never more than one block in memory)."""
    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, tags + 1) ** 1.1
    frequency /= frequency.sum()
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, tags))
    block = 50_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        logits = rng.normal(-7.0, 1.5, size=(n, tags)).astype(np.float32)
        n_gold = 1 + rng.poisson(1.5, size=n)
        n_confused = rng.integers(0, 4, size=n)
        row_of_gold = np.repeat(np.arange(n), n_gold)
        logits[row_of_gold, rng.choice(tags, size=len(row_of_gold), p=frequency)] = rng.normal(
            2.0, 1.5, size=len(row_of_gold)
        )
        row_of_confused = np.repeat(np.arange(n), n_confused)
        logits[row_of_confused, rng.integers(0, tags, size=len(row_of_confused))] = rng.normal(
            -0.5, 1.0, size=len(row_of_confused)
        )
        out[start : start + n] = 1.0 / (1.0 + np.exp(-logits))
    out.flush()
    del out
    os.replace(tmp, path)


def selected_csr(probs: NpyRows, thresholds: np.ndarray, seed: int = 2):
    """Decisions like the app's stored ``selected``, as the CSR matrix it builds (see the module docstring)."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, probs.shape[0], 50_000):
        block = probs[start : start + 50_000]
        chosen = block >= thresholds
        extra = np.flatnonzero(rng.random(len(block)) < 0.05)
        best_left_out = np.argmax(np.where(chosen[extra], -1.0, block[extra]), axis=1)
        chosen[extra, best_left_out] = True
        parts.append(sparse.csr_matrix(chosen))
    return sparse.vstack(parts, format="csr")


def write_readme(text: str) -> None:
    try:
        replace_section("rank", None, text, ROOT / "bench" / "README.md")
    except LookupError as exc:
        raise SystemExit(str(exc)) from exc


def rank_all_strategies(args: argparse.Namespace) -> int:
    """Every strategy on the same file, one child process each; the default's row first in the README."""
    results = []
    for name in sorted(STRATEGIES, key=lambda n: (n != DEFAULT_STRATEGY, n)):
        command = [
            sys.executable,
            __file__,
            "--strategy",
            name,
            "--rows",
            str(args.rows),
            "--tags",
            str(args.tags),
            "--batch-size",
            str(args.batch_size),
        ]
        completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        figures = last_json_line(completed.stdout) or {"strategy": name, "pass": False}
        figures.setdefault("exit_status", completed.returncode)
        print(json.dumps(figures), flush=True)
        results.append(figures)
    ok = all(r["pass"] for r in results)
    if args.write_readme:
        table = [
            "| strategy | wall time of `rank()` | CPU time (both threads) | peak RSS | result |",
            "|---|---|---|---|---|",
        ]
        for r in results:
            name = f"`{r['strategy']}`" + (" (default)" if r["strategy"] == DEFAULT_STRATEGY else "")
            if "wall_s" in r:
                verdict = "pass" if r["pass"] else "MISS"
                table.append(
                    f"| {name} | {r['wall_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_rss_mb']:,} MB | {verdict} |"
                )
            else:
                table.append(f"| {name} | | | | failed (exit status {r['exit_status']}) |")
        load = results[0].get("load_avg_1min_at_start")
        write_readme(
            f"Command: `python bench/rank_bench.py --strategy all --write-readme` ({args.rows:,} products x "
            f"{args.tags} tags, float32 probabilities read in blocks from a `.npy` file, batch "
            f"{args.batch_size}; every strategy in its own process). Targets: under {TARGET_S:.0f} s and under "
            f"{TARGET_RSS_BYTES / 1e6:,.0f} MB peak RSS (whole process, modAL/scikit-learn imports included).\n\n"
            + "\n".join(table)
            + "\n\n"
            + (
                f"1-min load average at the start of the default's run: {load:.1f} (2 cores). "
                if load is not None
                else ""
            )
            + f"Result: **{'pass' if ok else 'MISS'}**"
            + (" for every strategy." if ok else ".")
        )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument(
        "--strategy",
        default=DEFAULT_STRATEGY,
        choices=[*sorted(STRATEGIES), "all"],
        help="'all': every strategy, each in its own process (peak RSS is per process)",
    )
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument(
        "--selected", action="store_true", help="also pass stored decisions (sparse), as the app's queue does"
    )
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"probs_{args.rows}x{args.tags}_v1.npy"
    if not path.exists():
        # In a child process: the written pages of the memory-mapped file count in the writer's peak RSS,
        # which must stay the ranking's own.
        started = time.perf_counter()
        writer = multiprocessing.get_context("fork").Process(
            target=generate, args=(path, args.rows, args.tags)
        )
        writer.start()
        writer.join()
        if writer.exitcode != 0:
            raise SystemExit(f"generating {path.name} failed (exit code {writer.exitcode})")
        print(f"generated {path.name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    if args.strategy == "all":
        return rank_all_strategies(args)
    probs = NpyRows(path)
    thresholds = np.random.default_rng(1).uniform(0.2, 0.5, size=args.tags).astype(np.float32)

    selected = selected_csr(probs, thresholds) if args.selected else None
    rank(probs[np.arange(2_000)], strategy=args.strategy, thresholds=thresholds)  # imports modAL, sklearn
    rss_before = peak_rss_mb() * 2**20  # bytes
    load_before = os.getloadavg()[0]
    wall = time.perf_counter()
    cpu = time.process_time()
    priority = rank(
        probs,
        strategy=args.strategy,
        thresholds=thresholds,
        batch_size=args.batch_size,
        seed=0,
        selected=selected,
    )
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    peak_rss = peak_rss_mb() * 2**20
    order = review_order(priority)
    if len(np.unique(order)) != args.rows:
        raise SystemExit("rank() did not place every row once")

    figures = {
        "rows": args.rows,
        "tags": args.tags,
        "strategy": args.strategy,
        "batch_size": args.batch_size,
        "selected": bool(args.selected),
        "selected_nnz": None if selected is None else int(selected.nnz),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(peak_rss / 1e6),
        "rss_after_imports_mb": round(rss_before / 1e6),
        "load_avg_1min_at_start": round(load_before, 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "target_s": TARGET_S,
        "target_rss_mb": TARGET_RSS_BYTES / 1e6,
    }
    ok = wall < TARGET_S and peak_rss < TARGET_RSS_BYTES
    figures["pass"] = ok
    print(json.dumps(figures))
    if args.write_readme:
        write_readme(
            f"Command: `python bench/rank_bench.py` ({args.rows:,} products x {args.tags} tags, float32 probabilities "
            f"read in blocks from a `.npy` file, strategy `{args.strategy}`, batch {args.batch_size}).\n\n"
            "| figure | measured | target |\n|---|---|---|\n"
            f"| wall time of `rank()` | {wall:.2f} s | < {TARGET_S:.0f} s |\n"
            f"| CPU time (both threads) | {cpu:.2f} s | |\n"
            f"| peak RSS (whole process, modAL/torch imports included) | {peak_rss / 1e6:,.0f} MB | "
            f"< {TARGET_RSS_BYTES / 1e6:,.0f} MB |\n"
            f"| 1-min load average at start (2 cores, shared machine) | {load_before:.1f} | |\n\n"
            f"Result: **{'pass' if ok else 'MISS'}**."
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
