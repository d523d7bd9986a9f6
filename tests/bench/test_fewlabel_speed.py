"""bench/fewlabel_speed.py: the warm-worker figure per set, the verdict and the README table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import fewlabel_speed as speed  # noqa: E402


def _row(name: str, seed: int, call: str, wall: float, cpu: float = 10.0) -> dict:
    return {"set": name, "seed": seed, "call": call, "n_draw": 2000, "n_train": 1700, "n_valid": 300,
            "n_tags": 120, "wall_s": wall, "cpu_s": cpu, "device": "cpu", "load_before": 0.5,
            "load_after": 1.5, "threads": 2, "date": "2026-12-05",
            "command": ".venv/bin/python bench/fewlabel_speed.py --threads 2"}  # fmt: skip


def test_warm_calls_are_judged_and_first_calls_only_shown() -> None:
    rows = [_row("quick", 0, "first", 31.0), _row("quick", 0, "warm", 12.0, 20.0),
            _row("quick", 1, "first", 25.0), _row("quick", 1, "warm", 14.0, 23.0),
            _row("slow", 0, "first", 40.0), _row("slow", 0, "warm", 20.0, 35.0)]  # fmt: skip
    summary = speed.summarise(rows)
    assert summary["quick"]["warm"] == [12.0, 14.0] and summary["quick"]["first"] == [31.0, 25.0]
    # A first call above the target (it embeds the draw and loads the libraries) is not a miss.
    assert speed.verdict(summary, 20.0) == ["slow: warm training 20.0 s >= 20 s"]
    args = argparse.Namespace(size=2000, target_s=20.0)
    text = speed.render(summary, args, speed.verdict(summary, 20.0))
    assert "| quick | 120 | 2 | 2 | 0.5-1.5 | 31.0 | 14.0 [23.0] | 13.0 | met |" in text
    assert "| slow | 120 | 1 | 2 | 0.5-1.5 | 40.0 | 20.0 [35.0] | 20.0 | missed |" in text
    assert "Verdict: slow: warm training 20.0 s >= 20 s." in text
    assert "2026-12-05: `.venv/bin/python bench/fewlabel_speed.py --threads 2` (quick, slow)" in text


def test_a_run_replaces_only_the_sets_it_measured(tmp_path) -> None:
    kept = tmp_path / "fewlabel_speed.json"
    speed.merge_figures([_row("a", 0, "warm", 9.0), _row("b", 0, "warm", 30.0)], kept)
    merged = speed.merge_figures([_row("b", 0, "first", 20.0), _row("b", 0, "warm", 12.0)], kept)
    assert [(r["set"], r["call"], r["wall_s"]) for r in merged] == [
        ("a", "warm", 9.0),
        ("b", "first", 20.0),
        ("b", "warm", 12.0),
    ]
