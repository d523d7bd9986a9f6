"""What the benchmarks share: a throwaway PostgreSQL database, a gunicorn on a free port, peak RSS.

Every bench runs as a script (``bench/`` is ``sys.path[0]``) or is loaded by path after putting ``bench/`` on
``sys.path``, and imports this module as ``_common``. The peer runners in ``bench/peers/`` run in their own
virtualenvs and do not use it.

- Database: ``database_create`` / ``database_drop`` (the throwaway database, named by
  ``bench_database_name``: ``$BENCH_<BENCH>_DB`` or ``tagstudio_bench_<bench>``; dropped first if left over),
  ``database_execute`` (one autocommit statement), ``copy_lines`` (COPY text lines in chunks), and
  ``django_env`` / ``django_setup`` / ``django_migrate`` to point Django (this process or a child) at it.
- Server: ``gunicorn_start`` on ``free_port()``, returning once ``/healthz`` answers; ``GunicornServer.stop``.
- Memory: ``peak_rss_mb()`` of this process or of a running process by pid, ``children_peak_rss_mb()``
  of the waited-for children, and ``process_wait`` for one child's exit status with its peak RSS.

Importing this module loads neither psycopg, Django nor http.client (each is imported where it is used):
rank_bench reports its own process's peak RSS, which must stay what ranking costs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
LOOPBACK = "127.0.0.1"
# The PostgreSQL server the benches without a --database-url flag create their database on.
BENCH_POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
# A fixed key for the bench's own processes when the environment has none (settings require one with DEBUG off).
BENCH_SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
# What a bench's gunicorn runs with: production settings (DEBUG off) on loopback over plain HTTP, and an API
# rate limit far above what a bench sends (it measures latency, not the limiter).
SERVER_SETTINGS = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "API_RATE_LIMIT_USER": "100000/min",
    "LOG_LEVEL": "WARNING",
}


# The product table's catalog-data columns (what an import writes), in the order the benches COPY them.
PRODUCT_DATA_COLUMNS = (
    "external_id",
    "title",
    "description",
    "brand",
    "category_path",
    "attributes",
    "lang",
    "image_url",
    "content_hash",
)


class BenchError(RuntimeError):
    """A bench could not measure: a step failed; the message says which."""


# --------------------------------------------------------------------------------------------------------
# Throwaway PostgreSQL database


def bench_database_name(bench: str) -> str:
    """The throwaway database of ``bench``: ``$BENCH_<BENCH>_DB`` or ``tagstudio_bench_<bench>``."""
    return os.environ.get(f"BENCH_{bench.upper()}_DB", f"tagstudio_bench_{bench}")


def database_url(url: str, name: str) -> str:
    """``url`` (a server URL, with or without a database) pointing at database ``name``."""
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{name}"


def url_database_name(url: str) -> str:
    """The database ``url`` names (the part after its last ``/``)."""
    return url.rsplit("/", 1)[1]


def _database_identifier(url: str) -> str:
    """The database name of ``url`` as a quoted SQL identifier."""
    return '"' + url_database_name(url).replace('"', '""') + '"'


def database_execute(url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE DATABASE, VACUUM, CHECKPOINT need that)."""
    # Imported here, not at the top: libpq adds ~16 MB to a bench that measures its own peak RSS (rank).
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def database_create(url: str, *, admin_url: str | None = None) -> str:
    """Create the database ``url`` names, dropping a left-over one first; return ``url``.

    ``admin_url``: the database to connect to for CREATE/DROP DATABASE (default: ``postgres`` on that server).
    Raises :class:`BenchError` when another session is connected to it: a left-over database has none, and
    dropping it WITH (FORCE) would kill another bench run that uses the same database name.
    """
    admin_url = admin_url or database_url(url, "postgres")
    _django_connections_close()
    others = database_sessions(url, admin_url=admin_url)
    if others:
        raise BenchError(
            f"database {url_database_name(url)!r} is in use by {others} other session(s), another bench run perhaps: point this "
            "run at a database of its own (BENCH_<NAME>_DB, or the bench's --database-url)"
        )
    database_execute(admin_url, f"DROP DATABASE IF EXISTS {_database_identifier(url)} WITH (FORCE)")
    database_execute(admin_url, f"CREATE DATABASE {_database_identifier(url)}")
    return url


def database_sessions(url: str, *, admin_url: str | None = None) -> int:
    """How many server sessions other than this one are connected to the database ``url`` names."""
    import psycopg

    with psycopg.connect(admin_url or database_url(url, "postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (url_database_name(url),),
        ).fetchone()
    return int(row[0]) if row else 0


def _django_connections_close() -> None:
    """Close this process's Django connections, if it has any (they would count as another session)."""
    django_db = sys.modules.get("django.db")
    django_conf = sys.modules.get("django.conf")
    if django_db is not None and django_conf is not None and django_conf.settings.configured:
        django_db.connections.close_all()


def database_drop(url: str, *, admin_url: str | None = None) -> None:
    """Drop the database ``url`` names (closing this process's Django connections first, if it has any)."""
    _django_connections_close()
    database_execute(
        admin_url or database_url(url, "postgres"),
        f"DROP DATABASE IF EXISTS {_database_identifier(url)} WITH (FORCE)",
    )


def copy_lines(cursor: psycopg.Cursor, table: str, columns: Sequence[str], lines: Iterable[str]) -> int:
    """COPY text-format lines into ``table`` through ``cursor``, 20,000 at a time (values already escaped:
    no tabs, newlines or backslashes inside a field); the number of lines."""
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            buffer.write("\n")
            count += 1
            if count % 20_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return count


def django_env(url: str, **settings: str) -> dict[str, str]:
    """This process's environment with Django's settings pointed at database ``url``, plus ``settings``."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tagstudio.settings",
        DATABASE_URL=url,
        SECRET_KEY=env.get("SECRET_KEY") or BENCH_SECRET_KEY,
    )
    env.update(settings)
    return env


def django_setup(url: str, **settings: str) -> None:
    """Point this process's Django at database ``url`` (plus ``settings``) and set it up."""
    os.environ.update(django_env(url, **settings))
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # tagstudio.settings, when the bench runs from elsewhere
    import django  # here, not at the top: the benches that never set Django up do not load it

    django.setup()


def django_migrate(env: dict[str, str]) -> None:
    """``manage.py migrate`` in a child process with ``env`` (see ``django_env``)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )


# --------------------------------------------------------------------------------------------------------
# gunicorn on a free port


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def process_children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (Linux ``/proc``); [] when it has none or is gone."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclasses.dataclass
class GunicornServer:
    """A running gunicorn: its master process (the leader of its own process group) and its port."""

    process: subprocess.Popen
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def worker_pids(self) -> list[int]:
        return process_children(self.process.pid)

    def answers(self, path: str) -> bool:
        """Whether GET ``path`` answers 200 now."""
        import http.client  # here, not at the top: ~5 MB in a bench that measures its own peak RSS (rank)

        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)
        try:
            connection.request("GET", path)
            return connection.getresponse().status == 200
        except OSError:  # not listening yet, or still importing Django on a busy machine
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """SIGTERM to the master and its workers; SIGKILL after 30 s."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:  # already gone, workers included
            self.process.wait()
            return
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def gunicorn_start(
    app: str,
    *,
    env: dict[str, str],
    options: Sequence[str] = (),
    niceness: int | None = None,
    ready_path: str = "/healthz",
    timeout_s: float = 120.0,
) -> GunicornServer:
    """``python -m gunicorn APP --bind 127.0.0.1:<free port> OPTIONS`` from the repository root, returned
    once GET ``ready_path`` answers 200 (for ``/healthz``: a worker has loaded the app and reached the database).

    ``niceness``: set on the server's processes (the loader may run under ``nice``; the measured requests
    should not be starved by it). BenchError when it exits or does not answer within ``timeout_s``.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"{LOOPBACK}:{port}", *options],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,  # its own process group: stop() reaches the workers too
        preexec_fn=None if niceness is None else lambda: os.setpriority(os.PRIO_PROCESS, 0, niceness),
    )
    server = GunicornServer(process=process, port=port)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"gunicorn exited with status {process.returncode}")
        if server.answers(ready_path):
            return server
        time.sleep(0.3)
    server.stop()
    raise BenchError(f"gunicorn did not answer {ready_path} within {timeout_s:.0f} s")


# --------------------------------------------------------------------------------------------------------
# Peak RSS (MiB: Linux reports kibibytes)


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size in MiB of this process (``getrusage``), or of the running process ``pid``
    (``VmHWM`` in ``/proc/<pid>/status``: a server's worker, read while it lives)."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_peak_rss_mb() -> float:
    """The largest peak RSS in MiB among this process's children that have been waited for (and theirs)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


@dataclasses.dataclass(frozen=True)
class ProcessExit:
    returncode: int
    peak_rss_mb: float  # of the child, or of the largest process of its tree that it waited for
    timed_out: bool = False


def process_wait(process: subprocess.Popen, *, timeout_s: float | None = None) -> ProcessExit:
    """Wait for ``process`` with ``wait4`` (its own resource usage, not the sum over every child of this
    process); killed after ``timeout_s`` seconds. Linux counts what the child held before it exec'd (its
    parent's pages) in its peak, so spawn measured children from a small process."""
    started = time.perf_counter()
    timed_out = False
    while True:
        pid, status, usage = os.wait4(process.pid, 0 if timeout_s is None else os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout_s:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            timed_out = True
            break
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    return ProcessExit(process.returncode, usage.ru_maxrss / 1024, timed_out)


# --------------------------------------------------------------------------------------------------------
# Figures a child process reports


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """The figures a child bench process printed: its last output line that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


# --------------------------------------------------------------------------------------------------------
# The end of a bench run


def report_verdict(
    text: str, missed: Sequence[str], *, section: str, heading: str, write_readme: bool
) -> int:
    """Print a bench's report, write it as its README section when asked, and turn the targets it missed
    into the exit status (1, with the misses on stderr) that CI and people read."""
    from readme_section import replace_section  # bench/ is on sys.path wherever _common is imported

    print(text)
    if write_readme:
        replace_section(section, heading, "\n" + text)
    if missed:
        print("TARGET MISSED:\n" + "\n".join(f"  - {m}" for m in missed), file=sys.stderr)
        return 1
    return 0
