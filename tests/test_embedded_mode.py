"""`make run`'s embedded mode (SQLite + local worker on the file queue) starts and serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_embedded_mode_starts_and_serves(tmp_path):
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "MODEL_DIR", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(TAGSTUDIO_VAR_DIR=str(tmp_path / "var"), SECRET_KEY="embedded-test-" + "x" * 40, DEBUG="0")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_embedded", "--bind", f"127.0.0.1:{port}", "--no-train"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    health = response.read().decode()
                    break
            except OSError:
                time.sleep(1)
        assert health is not None, "the embedded server never answered /healthz"
        assert '"ok"' in health
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as response:
            assert response.status == 200
            assert b"csrfmiddlewaretoken" in response.read()
        assert (tmp_path / "var" / "tagstudio.sqlite3").exists()
        assert (tmp_path / "var" / "admin_credentials.txt").exists()
    finally:
        # SIGTERM to the command alone, as `kill` or a process manager sends it: it must take its web
        # server and worker down with it, not leave them running.
        # (Its output is read only afterwards: children left running would hold the pipe open.)
        process.send_signal(signal.SIGTERM)
        left_running = _group_alive_after(process, seconds=60)
        if left_running:
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=30)
    assert "TagStudio is running" in output, output[-3000:]
    assert "Loading the demo catalog" in output
    assert "No hostname was supplied" not in output  # kombu's warning on a broker URL without a host
    assert not left_running, "run_embedded exited on SIGTERM but left its server or worker running"


def _group_alive_after(leader: subprocess.Popen, *, seconds: float) -> bool:
    """Whether any process of the leader's group is still there after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        leader.poll()  # reap the leader once it exits: a zombie still counts as a member of its group
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.5)
    return True
