"""Playwright against Debian's chromium (never a downloaded browser) and pytest-django's live server.

Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a thread with
a running loop unless DJANGO_ALLOW_ASYNC_UNSAFE is set. The ORM calls here are the test's own setup and
checks, made while no request is being served from this thread, so allowing them is safe.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TAGSTUDIO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module; Playwright (and its event loop) stops when the module is done, and
    the async-safety override is removed again, so tests collected later run with Django's checks."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `bash .ci/browser` (installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_context(browser):
    """Fresh browser contexts (separate cookie jars = separate logged-in users), closed after the test."""
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def login_by_keyboard(page, base: str, username: str, password: str) -> None:
    """Sign in the way an operator does: type the name (the field has autofocus), Tab, the password, Enter."""
    page.goto(f"{base}/login/")
    # Typing before autofocus applies (a loaded machine) would type into nothing.
    page.wait_for_function("document.activeElement && document.activeElement.name === 'username'")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/review/")
