"""The review page in a real browser (Debian chromium via Playwright) against a live Django server."""

from __future__ import annotations

import pytest

from annotation.models import Product, ProductTag, ReviewAction, ReviewEvent, ReviewStatus
from tests.browser.conftest import login_by_keyboard
from tests.factories import (
    ModelVersionFactory,
    OperatorFactory,
    TagFactory,
    products_create,
    suggestions_create,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "operator-pass-123"


@pytest.fixture
def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def _operator(name: str):
    return OperatorFactory(username=name, password=PASSWORD)


def _login_by_keyboard(page, base: str, username: str) -> None:
    login_by_keyboard(page, base, username, PASSWORD)


def _card(page):
    return page.locator("#review-card")


def test_shortcuts_pressed_before_htmx_settles_the_new_card_still_go_through_htmx(
    live_server, new_context, expect
):
    """htmx binds a swapped-in card's forms when it settles; a fast operator's key must not fall through
    to a native form post (a full page load that puts the notice outside the card)."""
    _operator("fast")
    red = TagFactory(name="Red")
    version = ModelVersionFactory(version="v1", is_active=True)
    first, second = (products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 2), ("B", 1)))
    suggestions_create(first, version, {red: 0.9})
    suggestions_create(second, version, {red: 0.8})
    page = new_context().new_page()
    _login_by_keyboard(page, live_server.url, "fast")
    expect(_card(page)).to_have_attribute("data-product", first.external_id)
    page.evaluate("htmx.config.defaultSettleDelay = 5000")  # a very busy machine: settling lags the swap

    page.keyboard.press("Enter")  # submit A: the card for B is swapped in but not settled for 5 s
    expect(_card(page)).to_have_attribute("data-product", second.external_id)
    page.keyboard.press("u")  # undo at once, before the new card's forms are bound by the settle
    expect(_card(page)).to_have_attribute("data-product", first.external_id)
    expect(_card(page)).to_contain_text("Undid your review")
    page.keyboard.press("Enter")  # and submit again, also before the settle
    expect(_card(page)).to_have_attribute("data-product", second.external_id)
    expect(_card(page)).to_contain_text(f"Saved {first.external_id}")


def test_operator_reviews_three_products_by_keyboard_only(live_server, new_context, expect, settings):
    # Explicit accepts (the model's picks start unchecked): the keys below accept and un-accept chips.
    # test_review_card_browser covers the default, pre-checked card.
    settings.REVIEW_PRECHECK_SELECTED = False
    _operator("kim")
    red, blue, _ = TagFactory(name="Red"), TagFactory(name="Blue"), TagFactory(name="Cotton")
    version = ModelVersionFactory(version="v1", is_active=True)
    first, second, third = (
        products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 3), ("B", 2), ("C", 1))
    )
    suggestions_create(first, version, {red: 0.9, blue: 0.3})
    suggestions_create(second, version, {red: 0.8, blue: 0.7})
    suggestions_create(third, version, {blue: 0.6})
    page = new_context().new_page()

    _login_by_keyboard(page, live_server.url, "kim")
    expect(_card(page)).to_have_attribute("data-product", first.external_id)
    expect(page.locator(".shortcuts")).to_contain_text("skip this product")

    page.keyboard.press("1")  # accept Red
    page.keyboard.press("Enter")
    expect(_card(page)).to_have_attribute("data-product", second.external_id)

    page.keyboard.press("a")  # accept all at or above 0.50: Red and Blue
    page.keyboard.press("2")  # ... then un-accept Blue
    page.keyboard.press("Enter")
    expect(_card(page)).to_have_attribute("data-product", third.external_id)

    page.keyboard.press("/")
    page.keyboard.type("cotton")
    page.keyboard.press("Enter")  # adds the chip (checked against the server)
    expect(page.locator("#chips .chip.added")).to_contain_text("Cotton")
    page.keyboard.press("Enter")  # empty box: submit
    expect(_card(page)).to_contain_text("Nothing to review right now")
    expect(page.locator("[data-stat=today]")).to_have_text("3")

    events = {e.product_id: e for e in ReviewEvent.objects.filter(action=ReviewAction.SUBMIT)}
    assert (events[first.pk].accepted, events[first.pk].rejected) == (["Red"], ["Blue"])
    assert (events[second.pk].accepted, events[second.pk].rejected) == (["Red"], ["Blue"])
    assert (events[third.pk].added, events[third.pk].rejected) == (["Cotton"], ["Blue"])
    assert all(e.model_version_id == version.pk for e in events.values())

    page.keyboard.press("u")  # undo the last review: the third product comes back
    expect(_card(page)).to_have_attribute("data-product", third.external_id)
    expect(_card(page)).to_contain_text("Undid your review")
    assert Product.objects.get(pk=third.pk).review_status == ReviewStatus.UNREVIEWED
    assert not ProductTag.objects.filter(product=third).exists()

    page.keyboard.press("s")  # skip it
    expect(_card(page)).to_contain_text(f"Skipped {third.external_id}")
    assert ReviewEvent.objects.filter(action=ReviewAction.SKIP, product=third).exists()


def test_operator_cannot_add_an_unknown_tag_and_is_told_why(live_server, new_context, expect):
    _operator("kim")
    products_create(1)
    page = new_context().new_page()
    _login_by_keyboard(page, live_server.url, "kim")

    page.keyboard.press("/")
    page.keyboard.type("Glitter")
    page.keyboard.press("Enter")

    expect(page.locator("#add-tag-msg")).to_contain_text("only admins can create new tags")
    expect(page.locator("#chips .chip")).to_have_count(0)


def test_two_operators_never_see_the_same_product(live_server, new_context, expect):
    _operator("ann")
    _operator("ben")
    products_create(12)
    pages = {}
    for name in ("ann", "ben"):
        page = new_context().new_page()
        _login_by_keyboard(page, live_server.url, name)
        pages[name] = page

    shown: dict[str, list[str]] = {"ann": [], "ben": []}
    for _ in range(5):
        for name, page in pages.items():
            current = {n: p.locator("#review-card").get_attribute("data-product") for n, p in pages.items()}
            assert current["ann"] != current["ben"], current
            shown[name].append(current[name])
            page.keyboard.press("Enter")  # submit with no tags and take the next product
            expect(_card(page)).not_to_have_attribute("data-product", current[name])

    assert not set(shown["ann"]) & set(shown["ben"])
    submitted = list(
        ReviewEvent.objects.filter(action=ReviewAction.SUBMIT).values_list("product_id", flat=True)
    )
    assert len(submitted) == len(set(submitted)) == 10


def test_script_in_a_title_renders_as_text(live_server, new_context, expect):
    _operator("kim")
    product = Product.objects.create(
        external_id="XSS-1", title="<script>alert(1)</script>", description='<img src=x onerror="alert(2)">'
    )
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    _login_by_keyboard(page, live_server.url, "kim")
    expect(page.locator(".product-title")).to_have_text("<script>alert(1)</script>")
    expect(page.locator(".description p")).to_have_text('<img src=x onerror="alert(2)">')
    page.goto(f"{live_server.url}/products/{product.pk}/")
    expect(page.locator(".product-title")).to_have_text("<script>alert(1)</script>")
    page.goto(f"{live_server.url}/products/?status=all")
    expect(page.locator("table.products")).to_contain_text("<script>alert(1)</script>")

    assert dialogs == []
    assert page.locator("script:text('alert(1)')").count() == 0


def test_operator_cannot_reach_admin_pages(live_server, new_context):
    from django.urls import NoReverseMatch, reverse

    _operator("kim")
    page = new_context().new_page()
    _login_by_keyboard(page, live_server.url, "kim")

    response = page.goto(f"{live_server.url}/admin/")
    content = page.content()
    # Never the admin index: a 403, or Django admin's own refusal (its login form for a non-staff user).
    assert "Site administration" not in content
    assert response.status == 403 or "not authorized to access this page" in content
    for name in ("models", "taxonomy"):
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # that page belongs to another area and is not installed in this checkout
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403, url


def test_every_form_enforces_csrf(live_server, new_context, expect):
    _operator("kim")
    product, second = products_create(2)
    TagFactory(name="Red")
    context = new_context()
    page = context.new_page()
    _login_by_keyboard(page, live_server.url, "kim")
    expect(_card(page)).to_have_attribute("data-product", product.external_id)
    page.keyboard.press("Enter")  # one review, so that the undo form is on the page with the next card
    expect(_card(page)).to_have_attribute("data-product", second.external_id)
    expect(page.locator("#undo-button")).to_be_visible()

    actions = set(page.eval_on_selector_all("form[method=post]", "forms => forms.map(f => f.action)"))
    page.goto(f"{live_server.url}/products/{product.pk}/")
    actions |= set(page.eval_on_selector_all("form[method=post]", "forms => forms.map(f => f.action)"))
    assert len(actions) >= 6, actions  # submit, skip, undo, logout, claim, product undo

    for action in sorted(actions):
        # The browser's cookies (session and CSRF cookie) go along; only the form's token is missing.
        response = context.request.post(action, form={"tags": "Red"}, max_redirects=0)
        assert response.status == 403, action
        assert "CSRF" in response.text(), action
    anonymous = new_context()
    response = anonymous.request.post(
        f"{live_server.url}/login/", form={"username": "kim", "password": PASSWORD}
    )
    assert response.status == 403
    assert ReviewEvent.objects.filter(action=ReviewAction.SUBMIT).count() == 1
