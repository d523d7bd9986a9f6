"""Smoke test of bench/dashboard_bench.py on a tiny catalog: it loads, measures, reports and drops its
database. Timings are the bench's business (it exits 1 on a missed target), not this test's."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import REPO_ROOT

DB = "tagstudio_bench_dashboard_smoke"


@pytest.mark.slow
def test_bench_runs_end_to_end_and_drops_its_database():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tagstudio.settings", "BENCH_DASHBOARD_DB": DB}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "bench/dashboard_bench.py",
            "--products",
            "3000",
            "--reviews",
            "600",
            "--runs",
            "1",
            "--suggestions-per-product",
            "4",
            "--no-readme",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output
    assert "products 3,000" in output and "review_events 600" in output
    for line in (
        "GET /dashboard/ (steady",
        "GET /dashboard/ (cold",
        "GET /dashboard/suspicious/",
        "suspicious_labels",
    ):
        assert line in output, output
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone() is None
