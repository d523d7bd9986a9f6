"""Smoke test of bench/search_bench.py on a tiny catalog: it loads, measures every filter, reports each
count beside the exact one and drops its database. Timings are the bench's business (it exits 1 on a missed
target), not this test's."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import REPO_ROOT

DB = "tagstudio_bench_search_smoke"


@pytest.mark.slow
def test_search_bench_runs_end_to_end_and_drops_its_database():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tagstudio.settings", "BENCH_SEARCH_DB": DB}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "bench/search_bench.py",
            "--products",
            "3000",
            "--repeats",
            "2",
            "--no-write-readme",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output
    for name in (
        "suggested tag (frequent) + score range",
        "suggested tag (rare) + score range",
        "disagreement (reviewed)",
        "disagreement on one tag",
        "category prefix (2 levels)",
        "status + text",
    ):
        line = next((line for line in output.splitlines() if line.startswith(name)), "")
        match = re.search(r"count e.g. ([\d,]+)( \(estimate\))? \(exact ([\d,]+)\)", line)
        assert match, output
        if not match.group(2):  # an exact answer is the exact count
            assert match.group(1) == match.group(3), line
    assert "target p95 < 300 ms:" in output
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone() is None
