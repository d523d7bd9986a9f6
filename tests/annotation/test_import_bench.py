"""bench/import_bench.py end to end on a small catalog: its own database, both raw COPYs, two imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, shared_data_dir


@pytest.mark.slow
def test_import_bench_runs_and_checks_the_database(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "bench/import_bench.py",
            "--rows",
            "3000",
            "--data-dir",
            str(shared_data_dir()),
            "--bench-db",
            "tagstudio_bench_import_smoke",
            "--no-write-readme",
            "--no-products-only",
            "--json",
            str(tmp_path / "result.json"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Exit 1 is a missed speed target (expected on a small, shared machine); anything else is a failure.
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    first, second = result["import"], result["reimport"]
    assert (first["rows_ok"], first["created"], first["rows_rejected"]) == (3000, 3000, 0)
    assert first["tags_added"] == result["counts"]["product_tags"] > 0
    assert (second["created"], second["updated"], second["tags_added"]) == (0, 0, 0)
    assert result["raw_copy"]["rows"] == result["raw_copy_product"]["rows"] == 3000
    assert "| `import_products` into an empty catalog" in completed.stdout
