"""No page grows wider than the viewport, at a desktop width and on a phone, even with a 199-character tag;
on a phone the header fits, Submit is in reach, tap targets are at least 44 px, the keyboard help hides
(issue 15). Debian chromium via Playwright against the live server."""

from __future__ import annotations

import pytest

from annotation.models import ExportJob, JobStatus, ProductTag, TagSource
from annotation.roles import ADMIN
from annotation.services.users import user_create
from tests.factories import ModelVersionFactory, TagFactory, products_create, suggestions_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "admin-pass-123"
LONG_TAG = ("colour:" + "ultramarine" * 20)[:199]  # one unbroken word, as the walk's 199-character tag
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def world():
    user_create(username="ada", password=PASSWORD, role=ADMIN, validate=False)
    long_tag = TagFactory(name=LONG_TAG)
    short = [TagFactory(name=f"Tag {i}") for i in range(14)]
    version = ModelVersionFactory(
        version="v-layout", is_active=True, metrics={"micro_f1": 0.5, "p@1": 0.6, "p@5": 0.3}
    )
    ModelVersionFactory(version="v-older", metrics={"micro_f1": 0.4})
    products = products_create(3, title="A product title " + "w" * 120, description="word " * 80)
    for product in products:
        suggestions_create(
            product, version, {long_tag: 0.91, **{tag: 0.5 - i / 40 for i, tag in enumerate(short)}}
        )
    ProductTag.objects.create(product=products[1], tag=long_tag, source=TagSource.IMPORT)
    ExportJob.objects.create(file_format="csv", status=JobStatus.SUCCEEDED, rows=3, file_path="/tmp/none.csv")
    return {"tag": long_tag, "product": products[1]}


def _login(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/review/")


def _pages(world) -> list[str]:
    tag, product = world["tag"].pk, world["product"].pk
    return [
        "/review/",
        "/products/",
        f"/products/{product}/",
        f"/products/?tag={LONG_TAG}",
        "/dashboard/",
        "/dashboard/per-tag/",
        "/dashboard/suspicious/",
        "/models/",
        "/tags/",
        f"/tags/{tag}/",
        "/exports/",
    ]


def _overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_no_page_is_wider_than_the_viewport(live_server, browser, world, viewport):
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/login/")
        assert _overflow(page)[0] <= viewport["width"], "login page"
        _login(page, live_server.url)
        too_wide = []
        for path in _pages(world):
            response = page.goto(f"{live_server.url}{path}")
            assert response.status < 400, f"{path}: {response.status}"
            page.wait_for_load_state("networkidle")
            scroll_width, inner_width = _overflow(page)
            if scroll_width > inner_width:
                too_wide.append(f"{path}: {scroll_width} px > {inner_width} px")
        assert not too_wide, "\n".join(too_wide)
    finally:
        context.close()


def test_phone_header_submit_tap_targets_and_keyboard_help(live_server, browser, world):
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        _login(page, live_server.url)
        assert LONG_TAG in page.inner_text("#review-card")
        # The header fits: nothing of it beyond the screen's right edge.
        header = page.evaluate(
            "Math.max(...[...document.querySelectorAll('.topbar > *')].map(e => e.getBoundingClientRect().right))"
        )
        assert header <= PHONE["width"], f"header reaches {header} px"
        # Submit is on screen at once, without scrolling past the chips.
        box = page.locator("#submit-button").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
        # Tap targets: buttons, chips, nav links and text fields are at least 44 px tall.
        small = page.evaluate(
            """[...document.querySelectorAll(
                 'button, .button, .chip, .topbar nav a, select, input[type=text], input[type=number]')]
               .filter(e => e.offsetParent !== null)
               .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect().height])
               .filter(([, h]) => h < 44)"""
        )
        assert not small, f"tap targets under 44 px: {small}"
        # The keyboard help is hidden.
        assert not page.is_visible(".shortcuts")
        # A table scrolls inside its box, the page does not.
        page.goto(f"{live_server.url}/models/")
        scroll_width, inner_width = _overflow(page)
        assert scroll_width <= inner_width
        table = page.evaluate(
            "(() => { const t = document.querySelector('#versions table');"
            " return [getComputedStyle(t).overflowX, t.getBoundingClientRect().right]; })()"
        )
        assert table[0] == "auto" and table[1] <= PHONE["width"], table
    finally:
        context.close()


def test_phone_product_filters_fit_are_tappable_and_live_in_the_url(live_server, browser, world):
    """The catalog-search form (issue 16) on a phone: every control on screen, at least 44 px tall, and the
    filters chosen there end up in the URL of the result (a link to share, Back to return to)."""
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        _login(page, live_server.url)
        page.goto(f"{live_server.url}/products/")
        controls = page.evaluate(
            """[...document.querySelectorAll(
                 '#product-filters input:not([type=hidden]), #product-filters select, ' +
                 '#product-filters button, #product-filters label.check')]
               .map(e => { const r = e.getBoundingClientRect();
                           return [e.name || e.className || e.tagName, r.height, r.left, r.right]; })"""
        )
        assert len(controls) >= 11, controls
        small = [c for c in controls if c[1] < 44 and c[0] not in ("disagreement",)]
        assert not small, f"filter controls under 44 px: {small}"
        outside = [c for c in controls if c[2] < 0 or c[3] > PHONE["width"]]
        assert not outside, f"filter controls off screen: {outside}"
        page.fill("input[name=suggested_tag]", LONG_TAG)
        page.fill("input[name=min_score]", "0.9")
        page.select_option("select[name=status]", "all")
        page.select_option("select[name=sort]", "score")
        page.check("input[name=disagreement]")
        page.click("#product-filters button[type=submit]")
        page.wait_for_url("**/products/?*min_score=0.9*")
        assert "disagreement=on" in page.url and "sort=score" in page.url
        # Products 0 and 2: the long tag selected (.91), not approved; product 1 has it approved.
        assert page.locator("table.products tbody tr").count() == 2
        assert page.inner_text("#result-count").startswith("2 products")
        assert _overflow(page)[0] <= PHONE["width"]
    finally:
        context.close()
