"""/api/schema/ answers 200 to concurrent requests reaching a freshly started gunicorn worker.

drf-spectacular loads its extensions lazily, and that loading is not thread-safe: with threaded workers
(the Dockerfile runs ``--threads 4``), 6 of 8 concurrent first requests got 500 (AttributeError in
drf_spectacular/plumbing.py). Issue 14, point 5.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from bench._common import SERVER_SETTINGS, gunicorn_start

CONCURRENT = 8
FRESH_WORKERS = 2  # the race is on a worker's first schema build: try it on more than one


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _status(url: str, barrier: threading.Barrier) -> int:
    barrier.wait()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_schema_requests_all_answer_200():
    env = {key: value for key, value in os.environ.items() if key != "CACHE_URL"}
    env.update(
        SERVER_SETTINGS,
        API_RATE_LIMIT_ANON="100000/min",
        DATABASE_URL=_database_url(),  # pytest-django's test database (test_<name>)
        DJANGO_SETTINGS_MODULE="tagstudio.settings_test",
        CACHE_URL="",  # the database cache table: nothing shared with other tests' Redis
        PYTHONUNBUFFERED="1",
    )
    for _ in range(FRESH_WORKERS):
        server = gunicorn_start(
            "tagstudio.wsgi",
            env=env,
            options=["--workers", "1", "--threads", str(CONCURRENT), "--timeout", "120"],
        )
        try:
            barrier = threading.Barrier(CONCURRENT)
            url = f"{server.base_url}/api/schema/"
            with ThreadPoolExecutor(CONCURRENT) as pool:
                futures = [pool.submit(_status, url, barrier) for _ in range(CONCURRENT)]
                statuses = [future.result() for future in futures]
        finally:
            server.stop()
        assert statuses == [200] * CONCURRENT, statuses
