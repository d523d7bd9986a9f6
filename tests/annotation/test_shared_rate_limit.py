"""Rate limits hold across processes: two gunicorn servers (one worker each) share the anonymous counter.

Without ``CACHE_URL`` the counters live in the database cache table (PostgreSQL here, SQLite in embedded
mode); with it, in Redis. A per-process cache would serve the limit once per process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from django.conf import settings
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[2]
RATE = 10
REDIS_CACHE_URL = "redis://127.0.0.1:6379/8"
URL = "/api/docs/"  # anonymous and throttled (protected endpoints answer 401 before counting)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _base_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CACHE_URL"}
    env.update({"API_RATE_LIMIT_ANON": f"{RATE}/min", "PYTHONUNBUFFERED": "1", **extra})
    return env


class Servers:
    """Two gunicorn servers, one sync worker each: two processes behind one address (the client's)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.ports = [_free_port(), _free_port()]
        self.processes: list[subprocess.Popen] = []
        for index, port in enumerate(self.ports):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "tagstudio.wsgi", "--bind", f"127.0.0.1:{port}"]
                    + ["--workers", "1", "--timeout", "120"],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=open(log_dir / f"gunicorn-{index}.log", "ab"),  # noqa: SIM115 — closed with the process
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        self.log_dir = log_dir

    def wait_ready(self) -> None:
        for port, process in zip(self.ports, self.processes):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert process.poll() is None, self.logs()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                        break
                except urllib.error.HTTPError:
                    break  # answering at all is enough
                except OSError:
                    time.sleep(0.5)
            else:
                raise AssertionError(f"gunicorn on {port} never answered\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in self.log_dir.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _served_out_of(servers: Servers, requests: int) -> tuple[int, list[int]]:
    statuses = [_status(f"http://127.0.0.1:{servers.ports[attempt % 2]}{URL}") for attempt in range(requests)]
    assert set(statuses) <= {200, 429}, (statuses, servers.logs())
    return statuses.count(200), statuses


@pytest.fixture
def start_servers(tmp_path) -> Iterator:
    started: list[Servers] = []

    def start(env: dict[str, str]) -> Servers:
        servers = Servers(env, tmp_path)
        started.append(servers)
        servers.wait_ready()
        return servers

    try:
        yield start
    finally:
        for servers in started:
            servers.stop()


def _clear_counters(cache_url: str) -> None:
    if cache_url:
        redis.Redis.from_url(cache_url).flushdb()
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(settings.CACHE_TABLE)}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cache_url", ["", REDIS_CACHE_URL], ids=["no-CACHE_URL", "redis-CACHE_URL"])
def test_two_processes_share_the_anonymous_rate_limit(start_servers, cache_url):
    _clear_counters(cache_url)
    env = _base_env(
        DATABASE_URL=_database_url(),  # pytest-django's test database (test_<name>)
        DJANGO_SETTINGS_MODULE="tagstudio.settings_test",
        CACHE_URL=cache_url,  # "" = unset: the test settings would choose Redis otherwise
    )
    servers = start_servers(env)
    try:
        served, statuses = _served_out_of(servers, 3 * RATE)
        assert served == RATE, f"{served} of {3 * RATE} served against {RATE}/min: {statuses}"
    finally:
        _clear_counters(cache_url)


@pytest.mark.slow
def test_embedded_mode_shares_it_through_sqlite(start_servers, tmp_path):
    """Embedded mode (no DATABASE_URL, no broker): `migrate` alone prepares the shared cache."""
    env = {
        key: value
        for key, value in _base_env().items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "MODEL_DIR"}
    }
    env.update(
        TAGSTUDIO_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="embedded-test-" + "x" * 40,
        DEBUG="0",
        DJANGO_SETTINGS_MODULE="tagstudio.settings",
    )
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    servers = start_servers(env)
    served, statuses = _served_out_of(servers, 3 * RATE)
    assert served == RATE, f"{served} of {3 * RATE} served against {RATE}/min: {statuses}"


def test_no_deployment_falls_back_to_a_per_process_cache(tmp_path):
    """Production settings without CACHE_URL (and embedded mode) use the database table; compose, Redis."""
    env = {key: value for key, value in _base_env().items() if key not in {"CACHE_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="tagstudio.settings",
        SECRET_KEY="settings-test-" + "x" * 40,
        TAGSTUDIO_VAR_DIR=str(tmp_path / "var"),
    )
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == "django.core.cache.backends.db.DatabaseCache"
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    for service in ("web", "worker", "trainer", "beat"):
        assert compose["services"][service]["environment"]["CACHE_URL"].startswith("redis://"), service
