"""bench/learning_curve.py (quality_bench --curve): the seeded draws, the report maths and the targets, and
one small end-to-end run with the scikit-learn peer (real data sample, real runner, the result cache)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


qb = sys.modules.get("quality_bench") or _load("quality_bench")
curve = _load("learning_curve")


def test_sizes_parse_sorted_with_full_last_and_reject_nonsense() -> None:
    assert curve.parse_sizes("2000, 100,full,1_000,300,100") == [100, 300, 1000, 2000, "full"]
    for bad, message in (("100,abc", "neither"), ("1", "at least 2"), (" , ", "no sizes")):
        with pytest.raises(ValueError, match=message):
            curve.parse_sizes(bad)


def test_draws_are_seeded_nested_and_distinct_across_seeds() -> None:
    points = curve.curve_points(500, [10, 100, 499, 2000, "full"], n_seeds=3, split_seed=0)
    again = curve.curve_points(500, [10, 100, 499, 2000, "full"], n_seeds=3, split_seed=0)
    other_split = curve.curve_points(500, [10, 100], n_seeds=3, split_seed=1)
    assert all(np.array_equal(points[k], again[k]) for k in points)
    for seed in range(3):
        small, large = points[(10, seed)], points[(100, seed)]
        assert np.array_equal(large[:10], small)  # the 10-label draw is inside the 100-label one
        assert len(set(large.tolist())) == 100 and large.min() >= 0 and large.max() < 500
        assert len(points[(499, seed)]) == 499
    assert not np.array_equal(points[(100, 0)], points[(100, 1)])
    assert not np.array_equal(points[(100, 0)], other_split[(100, 0)])
    # A size at or above the training part, and "full", are the whole part, measured once.
    assert [k for k in points if k[0] in (2000, "full")] == [(2000, 0), ("full", 0)]
    assert np.array_equal(points[(2000, 0)], np.arange(500))


def test_mean_sd_and_error_reduction() -> None:
    assert curve.mean_sd([0.8, 0.9, 1.0]) == pytest.approx((0.9, 0.1))
    assert curve.mean_sd([0.7]) == (0.7, 0.0)
    # Error 0.2 against the peer's 0.4: half of it gone.
    assert curve.error_reduction(0.8, 0.6) == pytest.approx(0.5)
    assert curve.error_reduction(0.5, 0.6) == pytest.approx(-0.25)
    assert curve.error_reduction(1.0, 1.0) == 0.0


def _point(set_name, system, size, seed, f1, *, n_train=None, warm=None, worker=None, part=5000):
    info = {"train_s": 30.0}
    if warm is not None:
        info["train_warm_s"] = warm
    if worker is not None:
        info["train_warm_worker_s"] = worker
    return {"set": set_name, "system": system, "size": size, "seed": seed, "metrics": {"micro_f1": f1},
            "info": info, "n_train": n_train or (size if size != "full" else part), "n_train_part": part,
            "draw_tags": 10, "seconds": 5.0}  # fmt: skip


def test_summary_best_peer_reduction_share_and_targets() -> None:
    points = []
    for seed, (ts, lr, pecos) in enumerate([(0.80, 0.70, 0.72), (0.82, 0.72, 0.70), (0.84, 0.74, 0.71)]):
        points += [_point("a", "tagstudio", 1000, seed, ts), _point("a", "sklearn-ovr-lr", 1000, seed, lr),
                   _point("a", "pecos-xr-linear", 1000, seed, pecos)]  # fmt: skip
        points += [_point("a", "tagstudio", 2000, seed, 0.86, warm=12.0 + seed),
                   _point("a", "sklearn-ovr-lr", 2000, seed, 0.85),
                   _point("a", "pecos-xr-linear", 2000, seed, 0.80)]  # fmt: skip
    points += [_point("a", "tagstudio", "full", 0, 0.85), _point("a", "sklearn-ovr-lr", "full", 0, 0.8),
               _point("a", "pecos-xr-linear", "full", 0, 0.8)]  # fmt: skip
    summary = curve.summarise(points)
    cell = summary["a"]["sizes"][1000]
    assert cell["best_peer"] == ("sklearn-ovr-lr", pytest.approx(0.72))
    ts = cell["systems"]["tagstudio"]
    assert ts["mean"] == pytest.approx(0.82) and ts["sd"] == pytest.approx(0.02) and ts["n"] == 3
    assert ts["reduction"] == pytest.approx((0.28 - 0.18) / 0.28)
    assert summary["a"]["share"]["tagstudio"] == pytest.approx(0.82 / 0.85)

    missed = curve.check_targets(summary, ["tagstudio"], ["sklearn-ovr-lr", "pecos-xr-linear"])["tagstudio"]
    # 2,000 labels: 0.86 vs 0.85 is a 6.7 % error reduction (missed); 1,000 labels: 35.7 % (met); warm
    # training 14 s at most (met); the share is 96.5 % but on 1 set of the 4 the target needs (missed).
    assert any(m.startswith("a @ 2000: error reduction +6.7%") for m in missed), missed
    assert not any(m.startswith("a @ 1000") for m in missed), missed
    assert not any("warm training" in m for m in missed), missed
    assert any("on 1 of 1 measured sets" in m for m in missed), missed
    assert len(missed) == 2

    slow = [dict(p, info={"train_warm_s": 25.0}) if p["size"] == 2000 and p["system"] == "tagstudio" else p
            for p in points]  # fmt: skip
    missed = curve.check_targets(curve.summarise(slow), ["tagstudio"], ["sklearn-ovr-lr"])["tagstudio"]
    assert any("warm training at 2,000 labels 25.0 s >= 20 s" in m for m in missed), missed

    tables = curve.render_tables(summary, {"a": {1000: 0.5, 2000: 0.75}})
    assert "| tagstudio | **0.8200 ± 0.0200** | **0.8600 ± 0.0000** | **0.8500** |" in tables
    assert "| sklearn-ovr-lr | _0.7200 ± 0.0200_ |" in tables
    assert "| error reduction of tagstudio vs best peer | +35.7% | +6.7% | +25.0% |" in tables
    assert "| a | tagstudio | 0.8200 / 0.8500 | 96.5% | 30.0 | 14.0 | – |" in tables


def test_warm_training_is_judged_on_the_warm_worker_where_measured() -> None:
    """A warm process of 26 s (start-up included) whose second train() took 16 s meets the 20 s target;
    a warm worker of 21 s misses it whatever the process took."""

    def points(worker: float) -> list[dict]:
        return [
            _point("a", "tagstudio", 2000, seed, 0.86, warm=26.0, worker=worker - seed) for seed in range(3)
        ]

    summary = curve.summarise(points(16.0))
    assert not any("warm training" in m for m in curve.check_targets(summary, ["tagstudio"], [])["tagstudio"])
    assert "| a | tagstudio | – | – | 30.0 | 26.0 | 16.0 |" in curve.render_tables(summary, {})
    missed = curve.check_targets(curve.summarise(points(21.0)), ["tagstudio"], [])["tagstudio"]
    assert any("warm training at 2,000 labels 21.0 s >= 20 s" in m for m in missed), missed


def test_share_target_counts_sets_and_a_failed_point_is_missed() -> None:
    points = []
    for i, share in enumerate([0.96, 0.97, 0.99, 0.95, 0.90]):
        name = f"s{i}"
        points += [_point(name, "tagstudio", 1000, 0, 0.9 * share), _point(name, "tagstudio", "full", 0, 0.9)]
    assert curve.check_targets(curve.summarise(points), ["tagstudio"], [])["tagstudio"] == []
    failed = {**_point("s0", "tagstudio", 300, 0, 0.5), "error": "tagstudio train exited with 2"}
    del failed["metrics"]
    missed = curve.check_targets(curve.summarise([*points, failed]), ["tagstudio"], [])["tagstudio"]
    assert missed == ["s0 @ 300: tagstudio failed: tagstudio train exited with 2"]


@pytest.mark.slow
def test_curve_mode_runs_the_sklearn_peer_and_resumes_from_its_cache(tmp_path: Path) -> None:
    source = SHARED_DATA / "amazon_uk_toys" / "dev.jsonl"
    if not source.is_file():
        pytest.skip(f"shared data not found under {SHARED_DATA}")
    (tmp_path / "data" / "toys").mkdir(parents=True)
    lines = source.read_text(encoding="utf-8").splitlines()[:400]
    (tmp_path / "data" / "toys" / "dev.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("# bench\n", encoding="utf-8")
    argv = ["--curve", "40,80", "--curve-seeds", "2", "--systems", "sklearn-ovr-lr", "--data-dir",
            str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"), "--threads", "1",
            "--figures-dir", str(tmp_path / "figures"), "--readme", str(readme), "--write-readme"]  # fmt: skip
    assert qb.main(argv) == 0  # TagStudio not run: no target to miss
    results = tmp_path / "cache" / "curve" / "results" / "toys" / "sklearn-ovr-lr"
    files = sorted(p.name for p in results.iterdir())
    assert files == ["40-seed0.json", "40-seed1.json", "80-seed0.json", "80-seed1.json"]
    first = {name: json.loads((results / name).read_text(encoding="utf-8")) for name in files}
    assert all(0.05 < r["metrics"]["micro_f1"] <= 1.0 and r["n_test"] == 80 for r in first.values())
    assert first["40-seed0.json"]["draw_digest"] != first["40-seed1.json"]["draw_digest"]
    assert (tmp_path / "figures" / "curve_toys.csv").is_file()
    assert (tmp_path / "figures" / "curve_toys.png").stat().st_size > 1000
    section = readme.read_text(encoding="utf-8")
    assert (
        "<!-- curve:start -->" in section and "| sklearn-ovr-lr |" in section and "--curve 40,80" in section
    )

    # A second run with one more size measures only the new points; the others come from the cache.
    assert qb.main([*argv[:1], "40,80,120", *argv[2:]]) == 0
    again = {name: json.loads((results / name).read_text(encoding="utf-8")) for name in files}
    assert again == first
    assert (results / "120-seed1.json").is_file()

    # A fresh machine (no cache): the committed per-set file answers every point already measured.
    committed = json.loads((tmp_path / "figures" / "curve_toys.json").read_text(encoding="utf-8"))
    assert {(p["size"], p["seed"]) for p in committed["points"]} == {
        (size, seed) for size in (40, 80, 120) for seed in (0, 1)
    }
    shutil.rmtree(tmp_path / "cache")
    assert qb.main([*argv[:1], "40,80,120", *argv[2:], "--curve-report-only"]) == 0
    assert "| sklearn-ovr-lr |" in readme.read_text(encoding="utf-8")
