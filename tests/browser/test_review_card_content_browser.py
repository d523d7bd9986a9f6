"""The review card's product view in a real browser (Debian chromium via Playwright): an image that
cannot load (offline, unreachable host) gives way to the placeholder, which needs no network; a chip
lights up the title words that mention its tag."""

from __future__ import annotations

import pytest

from annotation.models import Product
from annotation.roles import OPERATOR
from annotation.services.users import user_create
from tests.annotation.training_support import trained_version
from tests.browser.conftest import login_by_keyboard
from tests.factories import TagFactory, products_create, suggestions_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "operator-pass-123"


@pytest.fixture
def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def _login(page, base: str) -> None:
    login_by_keyboard(page, base, "kim", PASSWORD)


@pytest.mark.parametrize("offline", [True, False], ids=["request-aborted", "host-unreachable"])
def test_image_placeholder_replaces_an_image_that_fails(live_server, new_context, expect, offline):
    user_create(username="kim", password=PASSWORD, role=OPERATOR, validate=False)
    (product,) = products_create(1)
    # Port 9 (discard) on loopback: refused at once, no outside network involved.
    url = "https://images.example.invalid/dress.jpg" if offline else "http://127.0.0.1:9/dress.jpg"
    Product.objects.filter(pk=product.pk).update(
        image_url=url, brand="Acme", category_path=["Women", "Dresses"]
    )
    context = new_context()
    if offline:
        context.route("**/*.jpg", lambda route: route.abort("internetdisconnected"))
    page = context.new_page()
    _login(page, live_server.url)

    placeholder = page.locator("#review-card .image-placeholder")
    expect(placeholder).to_be_visible()
    expect(placeholder).to_have_attribute("aria-label", "image not available")
    expect(page.locator("#review-card img.product-image")).to_be_hidden()
    box = placeholder.bounding_box()
    assert box is not None and round(box["width"]) == 200 and round(box["height"]) == 200
    expect(page.locator("#review-card .brand")).to_have_text("Acme")


def test_hovering_or_focusing_a_chip_lights_the_title_words_that_mention_it(
    live_server, new_context, expect, settings
):
    settings.REVIEW_EXPLAIN_LOAD_WAIT_SECONDS = 120  # the first card waits for the model to load
    user_create(username="kim", password=PASSWORD, role=OPERATOR, validate=False)
    version = trained_version()
    (product,) = products_create(1, title="Nike Men <b>Black</b> Sports Shoes")
    black, shoes = TagFactory(name="colour:black"), TagFactory(name="sports shoes")
    suggestions_create(product, version, {black: 0.9, shoes: 0.4})
    page = new_context().new_page()
    _login(page, live_server.url)

    title = page.locator("#product-title")
    expect(title).to_have_text("Nike Men <b>Black</b> Sports Shoes")  # the tags are text, not markup
    black_mark = title.locator(f'mark[data-tags~="{black.pk}"]')
    expect(black_mark).to_have_text("Black")
    expect(black_mark).not_to_have_class("mention lit")
    page.locator(f'.chip[data-tag-id="{black.pk}"]').hover()
    expect(black_mark).to_have_class("mention lit")
    expect(title.locator(f'mark[data-tags~="{shoes.pk}"]')).to_have_class("mention")
    page.locator(f'.chip[data-tag-id="{shoes.pk}"] input[type=checkbox]').focus()
    expect(title.locator(f'mark[data-tags~="{shoes.pk}"]')).to_have_class("mention lit")
    expect(page.locator(f'.chip[data-tag-id="{black.pk}"] .reason')).to_contain_text("in the title")
