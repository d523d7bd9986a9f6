"""The models page in a real browser (Debian chromium via Playwright): live progress, activate, strategy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from annotation.models import JobStatus, ModelState, ModelVersion, Setting, SuggestionRefresh, TrainingJob
from annotation.services.queue import STRATEGY_SETTING

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_broker"),
]


CHROMIUM = Path(os.environ.get("TAGSTUDIO_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
def page(live_server, admin_user):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `bash .ci/browser` (installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # ORM calls of the test itself, between page actions
    client = Client()
    client.force_login(admin_user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context()
        context.set_default_timeout(15_000)
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        yield context.new_page()
        browser.close()


def test_models_page_follows_training_and_refresh_live_and_activates(page, live_server):
    job = TrainingJob.objects.create(
        trigger="manual",
        status=JobStatus.RUNNING,
        progress={"phase": "epoch", "step": 3, "total": 10, "elapsed_s": 4.0, "eta_s": 9.0, "device": "cpu"},
    )
    page.goto(f"{live_server.url}/models/")
    page.wait_for_selector("text=3 / 10")
    assert page.is_disabled("#retrain")

    # The worker moves on: the page shows it without a reload (htmx polls every 2 s).
    TrainingJob.objects.filter(id=job.id).update(
        progress={"phase": "epoch", "step": 7, "total": 10, "elapsed_s": 9.0, "eta_s": 4.0, "device": "cpu"}
    )
    page.wait_for_selector("text=7 / 10")

    # It finishes with a ready version (kept inactive, as manual promotion would), whose refresh starts.
    (Path(settings.MODEL_DIR) / "v-browser").mkdir(parents=True, exist_ok=True)
    version = ModelVersion.objects.create(
        version="v-browser", state=ModelState.READY, metrics={"micro_f1": 0.777, "p@1": 0.8, "p@5": 0.5}
    )
    TrainingJob.objects.filter(id=job.id).update(
        status=JobStatus.SUCCEEDED, model_version=version, progress={"phase": "done", "step": 10, "total": 10}
    )
    page.wait_for_selector(f"#version-{version.id} button.activate")
    assert "0.777" in page.inner_text(f"#version-{version.id}")

    # Activating asks first: dismissing changes nothing, accepting promotes.
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click(f"#version-{version.id} button.activate")
    page.wait_for_timeout(300)
    assert questions and questions[0].startswith("Promote v-browser?")
    assert not ModelVersion.objects.filter(is_active=True).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#version-{version.id} button.activate")
    page.wait_for_selector("text=is now active")
    assert page.inner_text("#active-version") == "v-browser"
    assert ModelVersion.objects.get(is_active=True) == version
    refresh = SuggestionRefresh.objects.get(model_version=version)
    SuggestionRefresh.objects.filter(id=refresh.id).update(total=40, done=25, status=JobStatus.RUNNING)
    page.wait_for_selector("text=25 / 40 products")

    page.select_option("#strategy-select", "random")
    page.click("#strategy button[type=submit]")
    page.wait_for_selector("#strategy-in-use:has-text('random')")
    assert Setting.objects.get(key=STRATEGY_SETTING).value == "random"
