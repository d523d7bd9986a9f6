"""bench/_common.py: the throwaway database, the free port, gunicorn and peak RSS every bench relies on."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))  # as when a bench runs as a script
common = importlib.import_module("_common")

SERVER_URL = os.environ.get("DATABASE_URL") or common.BENCH_POSTGRES_URL


def _database_exists(name: str) -> bool:
    with psycopg.connect(common.database_url(SERVER_URL, "postgres")) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_free_port_can_be_bound_on_loopback() -> None:
    port = common.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind((common.LOOPBACK, port))


def test_database_url_swaps_or_adds_the_database_name() -> None:
    assert common.database_url("postgres://u@h:5432/postgres", "x") == "postgres://u@h:5432/x"
    assert common.database_url("postgres://u@h:5432", "x") == "postgres://u@h:5432/x"


def test_throwaway_database_is_created_fresh_and_dropped() -> None:
    name = f"ts_bench_common_test_{os.getpid()}"
    url = common.database_url(SERVER_URL, name)
    try:
        assert common.database_create(url) == url
        common.database_execute(url, "CREATE TABLE left_over (id int)")
        common.database_create(url)  # a left-over database is dropped first: the table is gone
        conn = psycopg.connect(url, autocommit=True)
        assert conn.execute("SELECT to_regclass('left_over')").fetchone()[0] is None
        # A database another run is connected to is never dropped from under it.
        assert common.database_sessions(url) == 1
        with pytest.raises(common.BenchError, match=rf"{name}.*in use by 1 other session"):
            common.database_create(url)
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        common.database_drop(url)  # even with this connection still open (FORCE)
        conn.close()
        assert not _database_exists(name)
    finally:
        common.database_drop(url)


def test_django_env_points_at_the_database_and_keeps_the_rest() -> None:
    env = common.django_env("postgres://u@h/db", LOG_LEVEL="WARNING")
    assert env["DATABASE_URL"] == "postgres://u@h/db"
    assert env["DJANGO_SETTINGS_MODULE"] == "tagstudio.settings"
    assert env["SECRET_KEY"]
    assert env["LOG_LEVEL"] == "WARNING"
    assert env["PATH"] == os.environ["PATH"]


def test_peak_rss_of_this_process_grows_with_what_it_touches() -> None:
    before = common.peak_rss_mb()
    assert 10 < before < 64 * 1024
    block = b"x" * ((int(before) + 64) * 2**20)  # written, so resident: the peak must pass it
    assert common.peak_rss_mb() >= before + 60
    del block
    # /proc's high-water mark of this process agrees with getrusage's (both the kernel's hiwater_rss).
    assert abs(common.peak_rss_mb(os.getpid()) - common.peak_rss_mb()) < 16


def test_process_wait_reports_the_childs_own_peak_rss() -> None:
    # Linux counts the memory a child had before exec (its parent's, shared) in its peak RSS, so the
    # measurement runs in a small parent: this test process may hold a gigabyte of models by now.
    script = textwrap.dedent(
        f"""
        import json, subprocess, sys
        sys.path.insert(0, {str(REPO_ROOT / "bench")!r})
        import _common
        child = subprocess.Popen([sys.executable, "-c", "block = b'x' * (200 * 2**20)"])
        finished = _common.process_wait(child)
        print(json.dumps({{"returncode": finished.returncode, "timed_out": finished.timed_out,
                          "peak": finished.peak_rss_mb, "polled": child.poll(),
                          "children_peak": _common.children_peak_rss_mb()}}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    figures = common.last_json_line(run.stdout)
    assert figures["returncode"] == 0 and not figures["timed_out"]
    assert 200 <= figures["peak"] < 1024
    assert figures["polled"] == 0  # Popen knows it was reaped
    assert figures["children_peak"] >= figures["peak"] - 1


def test_process_wait_kills_a_child_past_its_timeout() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    finished = common.process_wait(child, timeout_s=0.5)
    assert finished.timed_out and finished.returncode < 0


def test_gunicorn_starts_on_a_free_port_answers_and_stops(tmp_path: Path) -> None:
    (tmp_path / "tiny_app.py").write_text(
        textwrap.dedent(
            """
            def application(environ, start_response):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok"]
            """
        ),
        encoding="utf-8",
    )
    server = common.gunicorn_start(
        "tiny_app:application",
        env=dict(os.environ),
        options=["--pythonpath", str(tmp_path), "--workers", "1", "--log-level", "warning"],
        ready_path="/",
        timeout_s=60,
    )
    try:
        assert server.answers("/")
        (worker,) = server.worker_pids()
        assert 5 < common.peak_rss_mb(worker) < 1024
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert not server.answers("/")


def test_last_json_line_is_the_childs_figures() -> None:
    assert common.last_json_line('starting\n{"a": 1}\nnoise\n{"b": 2}\n\n') == {"b": 2}
    assert common.last_json_line("no figures\n") is None


def test_report_verdict_turns_missed_targets_into_the_exit_status(capsys) -> None:
    assert common.report_verdict("| a | met |", [], section="x", heading="## x", write_readme=False) == 0
    assert capsys.readouterr().out.strip() == "| a | met |"
    missed = ["a: 25.0 s >= 20 s"]
    assert (
        common.report_verdict("| a | missed |", missed, section="x", heading="## x", write_readme=False) == 1
    )
    assert "TARGET MISSED:\n  - a: 25.0 s >= 20 s" in capsys.readouterr().err
