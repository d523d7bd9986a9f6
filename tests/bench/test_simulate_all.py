"""bench/simulate_all.py: the README table merges committed per-set results measured with the same flags."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcore.simulate import CurvePoint, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))  # as when a bench runs as a script
simulate_all = importlib.import_module("simulate_all")

STRATEGY = "expected_errors_mixed"


def _args(**overrides: Any) -> argparse.Namespace:
    values = {
        "strategy": "default",
        "tagger": "default",
        "seeds": 2,
        "seed_size": 100,
        "batch": 100,
        "budget": 3000,
        "pool_size": 2000,
        "test_size": 700,
        "full_curves": False,
        "max_ratio": 0.5,
        "min_passing": 5,
        "tagger_note": "",
    }
    args = argparse.Namespace(**{**values, **overrides})
    args.defaults = {name: values[name] for name in simulate_all._MEASURING_FLAGS}
    return args


def _result(name: str, args: argparse.Namespace, *, strategy_catalog: list[float]) -> dict[str, Any]:
    """A set's result as run_set records it, from curves where random reaches the targets at 400 labels."""
    random_catalog = [0.6, 0.7, 0.75, 0.85]
    points = [
        CurvePoint(order, seed, i, 100 * (i + 1), 0.5 + 0.1 * i, 1.0, 0.0, catalog[i])
        for seed in range(2)
        for order, catalog in ((STRATEGY, strategy_catalog), ("random", random_catalog))
        for i in range(4)
    ]
    summary = summarize(points, strategy=STRATEGY, full_f1=0.8, target_share=0.95)
    summary.update(
        {
            "set": name,
            "pool": 2000,
            "test": 700,
            "wall_s": 600,
            "cpu_s": 300,
            "load_1min_mean": 3.2,
            "load_1min_max": 4.0,
            "measured_at": "2026-12-05T02:00Z",
            "code_commit": "abc1234",
            "settings": simulate_all.measuring_settings(args),
        }
    )
    return summary


@pytest.fixture
def figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(simulate_all, "FIGURES", tmp_path / "figures")
    monkeypatch.setattr(simulate_all, "CACHE", tmp_path / "cache")
    (tmp_path / "figures").mkdir()
    return tmp_path / "figures"


def _store(figures: Path, result: dict[str, Any]) -> None:
    (figures / f"simulate_{result['set']}.json").write_text(json.dumps(result), encoding="utf-8")


def test_committed_results_merge_only_when_measured_with_the_same_flags(figures: Path) -> None:
    args = _args()
    _store(figures, _result("a", args, strategy_catalog=[0.6, 0.85, 0.9, 0.95]))
    _store(figures, _result("b", _args(pool_size=6000), strategy_catalog=[0.6, 0.85, 0.9, 0.95]))
    fresh = {"c": _result("c", args, strategy_catalog=[0.6, 0.7, 0.8, 0.9])}

    rows, pending = simulate_all.merged_results(fresh, ["a", "b", "c", "d"], args)

    assert [r["set"] for r in rows] == ["a", "c"]
    assert pending == ["b", "d"]


def test_this_runs_result_replaces_the_committed_one(figures: Path) -> None:
    args = _args()
    _store(figures, _result("a", args, strategy_catalog=[0.6, 0.7, 0.8, 0.9]))
    fresh = {"a": _result("a", args, strategy_catalog=[0.6, 0.85, 0.9, 0.95])}

    rows, _ = simulate_all.merged_results(fresh, ["a"], args)

    assert rows[0]["catalog_labels_to_target"] == 200
    assert rows[0]["catalog_ratio"] == 0.5


def test_the_table_lists_every_set_with_when_and_what_measured_it(figures: Path) -> None:
    args = _args()
    old = _result("a", args, strategy_catalog=[0.6, 0.7, 0.8, 0.9])
    del old["cpu_s"], old["load_1min_mean"], old["load_1min_max"]
    old.update({"code_commit": "1662ef6", "note": "previous tagger"})
    _store(figures, old)
    fresh = {"c": _result("c", args, strategy_catalog=[0.6, 0.85, 0.9, 0.95])}

    rows, pending = simulate_all.merged_results(fresh, ["a", "b", "c"], args)
    text = simulate_all.readme_section(rows, args, pending)

    lines = text.split("Sets with catalog ratio")[0].splitlines()  # the notes below hold tables of their own
    table = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert table["a"].endswith("| 10 min | 2026-12-05 @ 1662ef6 (previous tagger) |")
    assert "| **0.75** | no |" in table["a"]  # catalog target 0.8: 300 labels against random's 400
    assert table["b"].startswith("| b | not run yet |")
    assert table["c"].endswith("| 10 min (5 CPU min, load 3.2) | 2026-12-05 @ abc1234 |")
    assert "| **0.50** | yes |" in table["c"]
    assert "**1 of 2 measured**" in text
    assert all(line.count("|") == table["a"].count("|") for line in table.values())
