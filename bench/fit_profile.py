"""Where the default tagger's training time goes: one fit on a few-label draw, under cProfile.

Draws like ``bench/fewlabel_probe.py`` (quality_bench's split, seed 0; the probe's seed-0 permutation of
the training part, first ``N`` products), tag names known from the start, embeddings from the probe's cache
(``.bench-cache/fewlabel-embeddings``; the draw is embedded before timing, so the fit is warm). Prints the
fit's wall and process CPU seconds with the load average before and after (the machine is shared: wall
under load is not the fit's cost), then the profile by cumulative and by own time.

    nice -n 15 .venv/bin/python bench/fit_profile.py amazon_uk_toys 2000 --threads 1
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewlabel_probe import CACHE_DIR  # noqa: E402
from quality_bench import DEFAULT_DATA_DIR, load_products, split_products, without_category  # noqa: E402

from mlcore.settings import RuntimeSettings  # noqa: E402
from mlcore.tagger import get_tagger  # noqa: E402
from mlcore.types import Taxonomy  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set_name")
    parser.add_argument("n", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config", default="{}", help="HybridConfig overrides as JSON")
    parser.add_argument("--lines", type=int, default=40, help="profile lines printed per ordering")
    args = parser.parse_args()
    products = load_products(DEFAULT_DATA_DIR / args.set_name / "dev.jsonl")
    split = split_products(products, seed=0, max_train=16_000, max_valid=4_000, max_test=5_000)
    train = [without_category(p) for p in split.train]
    taxonomy = Taxonomy.from_names(sorted({t for p in train for t in p.tags}))
    order = np.random.default_rng(1000).permutation(len(train))
    draw = [train[i] for i in order[: args.n]]
    runtime = RuntimeSettings(cache_dir=CACHE_DIR, num_threads=args.threads)
    tagger = get_tagger("default", {"seed": 13, **json.loads(args.config)}, runtime=runtime)
    tagger._embed(draw)  # warm: the encoder loaded and the draw's embeddings cached, as in the app
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    profile = cProfile.Profile()
    profile.enable()
    tagger.fit(draw, taxonomy=taxonomy)
    profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = os.getloadavg()
    print(
        f"{args.set_name} n={args.n} threads={args.threads}: wall {wall:.1f} s, process CPU {cpu:.1f} s; "
        f"1-min load {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print({k: v for k, v in tagger.info_.items() if isinstance(v, int | float)})
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(args.lines)
    stats.sort_stats("tottime").print_stats(args.lines // 2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
