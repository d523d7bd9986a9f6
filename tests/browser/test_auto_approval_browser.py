"""The admin's auto-approval flow in a real browser: turn it on at a target on the models page, see the
approvals and the audit state (models page and dashboard), revert a version with its confirmation."""

from __future__ import annotations

import re

import pytest

from annotation.models import AutoApprovalAudit, Product, ProductTag, ReviewStatus, TagSource
from annotation.services.auto_approval import auto_approval_run
from tests.annotation.test_auto_approval import _catalog, _validation_write
from tests.annotation.training_support import memory_broker
from tests.factories import AdminFactory, ModelVersionFactory, TagFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache", "in_memory_broker"),
]
PASSWORD = "browser-pass-123"


@pytest.fixture
def in_memory_broker():
    """The settings form enqueues a pass after commit: to kombu's memory transport, not the shared Redis."""
    with memory_broker():
        yield


@pytest.fixture
def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def test_turn_on_see_approvals_and_audit_then_revert(live_server, new_context, expect):
    AdminFactory(username="ada", password=PASSWORD)
    tags = {name: TagFactory(name=name) for name in ("shoes", "red")}
    version = ModelVersionFactory(is_active=True, config={"tag_ids": {n: t.id for n, t in tags.items()}})
    _validation_write(version, [({"shoes"}, [("shoes", 0.95), ("red", 0.03)])] * 100)
    _catalog(version, tags, sure=40, unsure=2, low=3)

    page = new_context().new_page()
    base = live_server.url
    page.goto(f"{base}/login/?next=/models/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{base}/models/")
    expect(page.locator("#auto-approval-status")).to_contain_text("off")

    page.check("#auto-enabled")
    page.fill("#auto-target", "0.9")
    page.fill("#auto-confidence", "0.9")
    page.fill("#auto-min-audit", "5")
    page.fill("#auto-min-evidence", "10000")
    with page.expect_navigation():  # the form posts and redirects back to the same page
        page.click("#auto-save")
    expect(page.locator("body")).to_contain_text("Auto-approval is on at precision 0.9")
    expect(page.locator("#auto-approval-status")).to_contain_text("on")

    # The worker's part (the pass is a Celery task): run it here, then look again. First on evidence where
    # every tenth sure pair is wrong: nothing is approved, and the page says why, readable on a phone.
    noisy = [({"shoes"} if i % 10 else {"red"}, [("shoes", 0.95), ("red", 0.03)]) for i in range(100)]
    _validation_write(version, noisy)
    assert auto_approval_run().pairs_approved == 0
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    why = page.locator("#auto-approval-why")
    expect(why).to_be_visible()
    expect(why).to_contain_text(f"{version.version} approves nothing")
    expect(why).to_contain_text("of which 10 are wrong")
    assert why.evaluate("el => el.scrollWidth <= el.clientWidth")  # wraps, no sideways scrolling
    page.set_viewport_size({"width": 1280, "height": 800})
    _validation_write(version, [({"shoes"}, [("shoes", 0.95), ("red", 0.03)])] * 100)
    result = auto_approval_run()
    assert result.pairs_approved == 42
    drawn = AutoApprovalAudit.objects.count()
    page.reload()
    row = page.locator(f"#auto-approval tr.auto-version[data-version='{version.version}']")
    expect(row.locator("[data-figure=approved-pairs]")).to_have_text("42")
    expect(row.locator("[data-figure=audit-reviewed]")).to_have_text(f"0 / {drawn}")
    expect(row).to_contain_text("no audit review yet")
    expect(page.locator("#auto-approval-why")).to_have_count(0)  # it approves now: no reason shown

    page.goto(f"{base}/dashboard/")
    dash_row = page.locator(f"#auto-approval tr.auto-version[data-version='{version.version}']")
    expect(dash_row.locator("[data-figure=approved-pairs]")).to_have_text("42")
    expect(page.locator("#auto-approval form.revert-form")).to_have_count(
        0
    )  # reverting is on the models page

    page.goto(f"{base}/models/")
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.locator(f"tr.auto-version[data-version='{version.version}'] button.revert-auto").click()
    expect(page.locator("body")).to_contain_text(re.compile(r"Reverted v\S+: 42 model-approved tags removed"))
    assert dialogs and "42 tags" in dialogs[0]
    expect(row.locator("[data-figure=unconfirmed]")).to_have_text("0")
    expect(row).to_contain_text("reverted")
    assert not ProductTag.objects.filter(source=TagSource.MODEL).exists()
    assert not Product.objects.filter(review_status=ReviewStatus.AUTO).exists()
