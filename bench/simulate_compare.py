"""Compare several selection strategies on one set's simulation split, same seeds, one random control.

``.venv/bin/python bench/simulate_compare.py myntra_fashion_attrs --strategies coverage,gradient_embedding
--budget 1000`` splits the set as ``bench/simulate_all.py`` does (``--pool-size`` / ``--test-size``), trains
the tagger on the whole pool for the target, runs every strategy and random on the same seed sets
(``mlcore.simulate.run_curves``), and prints per strategy the labels to the target, the mean F1 lead over
random and the mean curve. This is how the exploration table in ``bench/README.md`` was measured; the
official per-set figures come from ``simulate_all.py`` (the ``python -m mlcore.simulate`` contract).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from simulate_all import CACHE, split_set  # noqa: E402

from mlcore import simulate  # noqa: E402
from mlcore.cli import runtime_from_env  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", help="a set name under ../shared/data")
    parser.add_argument("--strategies", required=True, help="comma-separated strategy names")
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=700)
    parser.add_argument("--tagger", default="default")
    parser.add_argument("--selection-features", default="text", choices=simulate.SELECTION_INPUTS)
    args = parser.parse_args()

    strategies = [simulate.resolved_strategy(s) for s in args.strategies.split(",") if s]
    # Its own folder: simulate_all.py's split of the same set may be in use with other sizes.
    directory = CACHE / args.set / f"compare-{args.pool_size}-{args.test_size}"
    pool_path, test_path, _, _ = split_set(
        args.set, pool_size=args.pool_size, test_size=args.test_size, directory=directory
    )
    config = simulate.SimulationConfig(
        pool=pool_path,
        test=test_path,
        strategy=strategies[0],
        out=Path("unused"),
        budget=args.budget,
        seeds=args.seeds,
        tagger=args.tagger,
        selection_features=args.selection_features,
        runtime=runtime_from_env(os.environ),
    )
    pool = simulate.load_records(pool_path, role="pool", keep_category_path=False)
    test = simulate.load_records(test_path, role="test", keep_category_path=False)
    started = time.perf_counter()
    full_f1 = simulate.micro_f1(simulate.make_tagger(args.tagger, config.runtime).fit(pool), test)
    target = 0.95 * full_f1
    features, texts = simulate.selection_inputs(pool, args.selection_features, config.runtime)
    names = [*strategies, simulate.CONTROL] if simulate.CONTROL not in strategies else strategies
    points = simulate.run_curves(pool, test, strategies=names, config=config, features=features, texts=texts)
    print(
        f"{args.set}: pool {len(pool)}, test {len(test)}, whole-pool F1 {full_f1:.4f}, target {target:.4f}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    for name in names:
        labels, f1, _, _ = simulate.mean_curve(points, name)
        lead = simulate.mean_f1_lead(points, name) if name != simulate.CONTROL else None
        print(
            json.dumps(
                {
                    "strategy": name,
                    "labels_to_target": simulate.labels_to_target(labels, f1, target),
                    "mean_f1_lead": None if lead is None else round(lead, 4),
                    "curve": {n: round(v, 4) for n, v in zip(labels, f1)},
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
