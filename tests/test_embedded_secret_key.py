"""The README's `manage.py` commands work on the embedded setup without exporting SECRET_KEY by hand;
a production setup (a broker configured) still refuses to start without one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_DROPPED = {"DATABASE_URL", "CELERY_BROKER_URL", "MODEL_DIR", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG"}


def _manage(args: list[str], env_extra: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _secret_key(env_extra: dict[str, str]) -> str:
    shown = _manage(
        ["shell", "-v", "0", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"], env_extra
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_readme_commands_work_in_embedded_mode_without_exporting_secret_key(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    (var_dir / "secret_key").write_text("kept-by-make-run-" + "k" * 40 + "\n")
    env = {"TAGSTUDIO_VAR_DIR": str(var_dir)}

    migrate = _manage(["migrate", "--no-input", "-v", "0"], env)
    assert migrate.returncode == 0, migrate.stderr
    created = _manage(
        ["create_user", "alice", "--role", "operator", "--password-stdin"], env, stdin="a-long-passphrase-1\n"
    )
    assert created.returncode == 0, created.stderr
    assert "SECRET_KEY" not in created.stderr
    # The same key as the running server (make run's var/secret_key), not a fresh one per command.
    assert _secret_key(env) == "kept-by-make-run-" + "k" * 40


def test_embedded_mode_creates_a_private_key_file_when_missing(tmp_path):
    var_dir = tmp_path / "var"
    env = {"TAGSTUDIO_VAR_DIR": str(var_dir)}
    key = _secret_key(env)
    key_file = var_dir / "secret_key"
    assert key_file.read_text().strip() == key
    assert len(key) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _secret_key(env) == key  # kept, not regenerated


def test_production_mode_still_refuses_to_start_without_secret_key(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    (var_dir / "secret_key").write_text("must-not-be-used-" + "p" * 40 + "\n")
    result = _manage(
        ["check"], {"TAGSTUDIO_VAR_DIR": str(var_dir), "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15"}
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
