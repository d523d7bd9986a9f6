"""mlcore.simulate: how labels-to-target and the ratio are read off the curves, and the CLI end to end on a
tiny real pool (lexical tagger; no Django)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from mlcore.selection import DEFAULT_STRATEGY
from mlcore.simulate import (
    CurvePoint,
    labels_to_target,
    main,
    mean_curve,
    mean_f1_lead,
    read_csv,
    seed_rows,
    summarize,
    write_csv,
)
from tests.conftest import REPO_ROOT
from tests.mlcore.conftest import DATA


def _points(
    strategy: str, curves: dict[int, list[float]], start: int = 100, step: int = 100
) -> list[CurvePoint]:
    return [
        CurvePoint(strategy, seed, i, start + i * step, f1, 0.0, 0.0)
        for seed, values in curves.items()
        for i, f1 in enumerate(values)
    ]


def test_labels_to_target_is_the_first_count_reaching_it():
    assert labels_to_target([100, 200, 300], [0.5, 0.8, 0.9], 0.8) == 200
    assert labels_to_target([100, 200, 300], [0.5, 0.6, 0.7], 0.8) is None


def test_mean_curve_averages_the_seeds():
    labels, mean, low, high = mean_curve(_points("x", {0: [0.2, 0.6], 1: [0.4, 0.8]}), "x")
    assert labels == [100, 200]
    assert mean == pytest.approx([0.3, 0.7])
    assert low == [0.2, 0.6] and high == [0.4, 0.8]


def test_summary_ratio_both_reached():
    points = _points("dense_uncertain", {0: [0.5, 0.85, 0.9], 1: [0.5, 0.8, 0.9]}) + _points(
        "random", {0: [0.5, 0.6, 0.7, 0.8, 0.9], 1: [0.5, 0.6, 0.7, 0.9, 0.9]}
    )
    s = summarize(points, strategy="dense_uncertain", full_f1=0.8 / 0.95, target_share=0.95)
    assert s["target_f1"] == pytest.approx(0.8)
    assert s["labels_to_target"] == 200 and s["random_labels_to_target"] == 400
    assert s["ratio"] == 0.5 and s["ratio_is_upper_bound"] is False


def test_summary_ratio_when_random_never_reaches_is_an_upper_bound():
    points = _points("d", {0: [0.5, 0.9, 0.9]}) + _points("random", {0: [0.5, 0.6, 0.7]})
    s = summarize(points, strategy="d", full_f1=1.0, target_share=0.8)
    assert s["random_labels_to_target"] is None
    assert s["ratio"] == pytest.approx(200 / 300, abs=1e-4) and s["ratio_is_upper_bound"] is True


def test_summary_when_strategy_never_reaches_has_no_ratio():
    points = _points("d", {0: [0.5, 0.6]}) + _points("random", {0: [0.5, 0.9]})
    s = summarize(points, strategy="d", full_f1=1.0, target_share=0.8)
    assert s["labels_to_target"] is None and s["ratio"] is None
    assert s["random_labels_to_target"] == 200


def test_mean_f1_lead_averages_the_gap_after_the_seed_round():
    points = _points("d", {0: [0.5, 0.7, 0.9], 1: [0.5, 0.7, 0.7]}) + _points("random", {0: [0.5, 0.6, 0.7]})
    # Seed round (100 labels) is shared and left out; at 200: 0.7 - 0.6, at 300: 0.8 - 0.7.
    assert mean_f1_lead(points, "d") == pytest.approx(0.1)
    s = summarize(points, strategy="d", full_f1=1.0, target_share=0.8)
    assert s["mean_f1_lead"] == pytest.approx(0.1)
    assert mean_f1_lead(_points("d", {0: [0.5]}), "d") is None  # no random curve to compare with


def test_curves_csv_round_trips(tmp_path):
    points = _points("d", {0: [0.5, 0.71234], 2: [0.4, 0.6]})
    write_csv(tmp_path / "curves.csv", points)
    assert read_csv(tmp_path / "curves.csv") == points


def test_seed_sets_are_fixed_per_seed():
    assert list(seed_rows(1000, 50, 1)) == list(seed_rows(1000, 50, 1))
    assert set(seed_rows(1000, 50, 1)) != set(seed_rows(1000, 50, 2))


def test_bad_arguments_are_reported(tmp_path, capsys):
    assert main(["--pool", "p", "--test", "t", "--out", str(tmp_path), "--strategy", "nope"]) == 2
    assert "--strategy 'nope'" in capsys.readouterr().err
    assert main(["--pool", "p", "--test", "t", "--out", str(tmp_path), "--budget", "50"]) == 2
    with pytest.raises(FileNotFoundError, match="--pool: no such file"):
        main(["--pool", str(tmp_path / "missing.jsonl"), "--test", "t", "--out", str(tmp_path)])


# Samples in tests/data (see its README): English fashion titles, and Chinese reviews of 9 categories
# stored grouped by category (every other line goes to the pool so both sides see every category).
SAMPLES = {
    "en_fashion": (DATA / "mlcore_en_fashion.jsonl", slice(0, 160), slice(160, 240)),
    "zh_reviews": (DATA / "mlcore_selection_zh_reviews.jsonl", slice(0, 320, 2), slice(1, 160, 2)),
}


def _write_sample(path, source, rows: slice) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[rows]), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_cli_end_to_end_on_a_tiny_real_pool(tmp_path, name):
    pool, test, out = tmp_path / "pool.jsonl", tmp_path / "test.jsonl", tmp_path / "out"
    source, pool_rows, test_rows = SAMPLES[name]
    _write_sample(pool, source, pool_rows)
    _write_sample(test, source, test_rows)
    command = [
        sys.executable,
        "-m",
        "mlcore.simulate",
        "--pool",
        str(pool),
        "--test",
        str(test),
        "--strategy",
        "default",
        "--seed-size",
        "40",
        "--batch",
        "40",
        "--budget",
        "120",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--tagger",
        "lexical",
    ]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    for key in ("strategy", "labels_to_target", "random_labels_to_target", "ratio", "target_f1", "final_f1"):
        assert key in summary
    assert summary["strategy"] == DEFAULT_STRATEGY
    assert 0 < summary["target_f1"] <= 1
    with open(out / "curves.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # 2 strategies x 2 seeds x rounds at 40, 80, 120 labels
    assert sorted({(r["strategy"], r["seed"]) for r in rows}) == sorted(
        [
            (DEFAULT_STRATEGY, "0"),
            (DEFAULT_STRATEGY, "1"),
            ("random", "0"),
            ("random", "1"),
        ]
    )
    assert sorted({int(r["labels"]) for r in rows}) == [40, 80, 120]
    assert all(0 <= float(r["micro_f1"]) <= 1 for r in rows)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["labels_to_target"] == summary["labels_to_target"]
