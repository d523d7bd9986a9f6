"""`manage.py create_user NAME --role operator|admin`: password by prompt or stdin, token on the last line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.authtoken.models import Token

from annotation.roles import is_admin, is_operator

REPO = Path(__file__).resolve().parents[2]


def _token_of(output: str) -> str:
    return output.strip().splitlines()[-1].split()[-1]


@pytest.mark.django_db
def test_password_from_stdin_and_token_is_the_last_word(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-Long-enough-passphrase-42\n"))
    out = io.StringIO()
    call_command("create_user", "mia", "--role", "operator", "--password-stdin", stdout=out)

    user = get_user_model().objects.get(username="mia")
    assert _token_of(out.getvalue()) == Token.objects.get(user=user).key
    assert user.check_password("a-Long-enough-passphrase-42")
    assert is_operator(user) and not is_admin(user)


@pytest.mark.django_db
def test_prompted_password_must_match_twice(monkeypatch):
    answers = iter(["a-Long-enough-passphrase-42", "a-Long-enough-passphrase-42"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    out = io.StringIO()
    call_command("create_user", "ada", "--role", "admin", stdout=out)
    user = get_user_model().objects.get(username="ada")
    assert is_admin(user) and user.is_staff
    assert _token_of(out.getvalue()) == Token.objects.get(user=user).key

    answers = iter(["a-Long-enough-passphrase-42", "different-passphrase-43"])
    with pytest.raises(CommandError, match="do not match"):
        call_command("create_user", "bob", "--role", "operator")


@pytest.mark.django_db
def test_bad_input_is_refused_with_a_reason(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    with pytest.raises(CommandError, match="too short"):
        call_command("create_user", "tim", "--role", "operator", "--password-stdin")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    with pytest.raises(CommandError, match="must not be empty"):
        call_command("create_user", "tim", "--role", "operator", "--password-stdin")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_user", "tim", "--role", "superhero", "--password-stdin")
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-Long-enough-passphrase-42\n"))
    call_command("create_user", "tim", "--role", "operator", "--password-stdin", stdout=io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-Long-enough-passphrase-42\n"))
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "tim", "--role", "operator", "--password-stdin")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_real_command_line():
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/"
        f"{settings_dict['NAME']}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "create_user", "cli-user", "--role", "operator", "--password-stdin"],
        input="a-Long-enough-passphrase-42\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    user = get_user_model().objects.get(username="cli-user")
    assert _token_of(result.stdout) == Token.objects.get(user=user).key
