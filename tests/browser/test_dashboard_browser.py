"""The dashboard and the taxonomy tree in a real browser (Debian chromium via Playwright, live server).

Fixtures ``browser``/``new_context`` come from tests/browser/conftest.py (Debian chromium, never a
downloaded browser).
"""

from __future__ import annotations

import pytest

from annotation.services.tags import tag_create
from tests.annotation.test_dashboard_views import build_history
from tests.factories import AdminFactory, OperatorFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache"),
]
PASSWORD = "browser-pass-123"

# For every chart: its drawn marks and the area they cover on screen (getBBox of the marks' group).
CHART_MARKS_JS = """
() => Array.from(document.querySelectorAll('figure.chart')).map(figure => {
  const svg = figure.querySelector('svg');
  const marks = Array.from(svg.querySelectorAll('rect.bar, polyline.line, circle.dot'));
  const sizes = marks.map(mark => { const box = mark.getBBox(); return box.width * box.height; });
  const lines = Array.from(svg.querySelectorAll('polyline.line')).map(l => l.getTotalLength());
  return {
    key: figure.dataset.chart,
    svgWidth: svg.getBoundingClientRect().width,
    svgHeight: svg.getBoundingClientRect().height,
    marks: marks.length,
    paintedArea: sizes.reduce((a, b) => a + b, 0),
    lineLength: lines.reduce((a, b) => a + b, 0),
    ticks: svg.querySelectorAll('text.tick').length,
  };
})
"""


@pytest.fixture
def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def login(page, base: str, username: str, then: str) -> None:
    page.goto(f"{base}/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{base}{then}")


def test_dashboard_charts_are_drawn(live_server, new_context, expect):
    operator = OperatorFactory(username="dora", password=PASSWORD)
    history = build_history(operator)
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server.url, "dora", "/dashboard/")

    charts = {chart["key"]: chart for chart in page.evaluate(CHART_MARKS_JS)}
    assert set(charts) == {"reviews-per-day", "model-versions", "learning-curve", "accepted-unchanged"}
    for key, chart in charts.items():
        assert chart["svgWidth"] > 100 and chart["svgHeight"] > 50, key
        assert chart["marks"] > 0 and chart["ticks"] > 0, key
    assert charts["reviews-per-day"]["paintedArea"] > 0  # bars with a visible area
    assert charts["accepted-unchanged"]["paintedArea"] > 0
    assert charts["model-versions"]["lineLength"] > 50  # two versions: real line segments
    assert charts["learning-curve"]["lineLength"] > 50

    # The suspicious labels arrive by htmx after the page, with a link for a second look.
    row = page.locator(f'#suspicious-list tr[data-product="{history["suspicious"].pk}"]')
    expect(row).to_be_visible()
    expect(row.locator("a")).to_have_attribute("href", f"/products/{history['suspicious'].pk}/")

    # Sorting the per-tag table swaps it in place: worst first, then best first.
    first_tag = page.locator("#per-tag tbody tr td:first-child").first
    expect(first_tag).to_have_text("boots")
    page.click("#per-tag th a:has-text('F1')")
    expect(page.locator("#per-tag th[aria-sort='descending']")).to_be_visible()
    expect(first_tag).to_have_text("dress")
    assert page.url.endswith("/dashboard/")  # htmx swap, no navigation
    assert errors == []


def test_taxonomy_tree_expands_lazily_and_pickers_search(live_server, new_context, expect):
    AdminFactory(username="ada", password=PASSWORD)
    shoes = tag_create(name="Shoes")
    sneakers = tag_create(name="Sneakers", parent=shoes)
    tag_create(name="Running shoes", parent=sneakers)
    page = new_context().new_page()
    login(page, live_server.url, "ada", "/tags/")

    tree = page.locator("#tag-tree")
    expect(tree.get_by_role("link", name="Shoes", exact=True)).to_be_visible()
    assert tree.get_by_role("link", name="Sneakers", exact=True).count() == 0  # not loaded yet
    tree.locator(f'li[data-tag="{shoes.pk}"] > details > summary').click()
    expect(tree.get_by_role("link", name="Sneakers", exact=True)).to_be_visible()
    tree.locator(f'li[data-tag="{sneakers.pk}"] > details > summary').click()
    expect(tree.get_by_role("link", name="Running shoes", exact=True)).to_be_visible()

    # The parent picker fills its <datalist> from the server while typing.
    page.locator("#create-parent").press_sequentially("sneak", delay=30)
    expect(page.locator("#create-parent-options option")).to_have_count(1)
    page.fill("#tag-create input[name=name]", "Trail runners")
    page.fill("#create-parent", "Sneakers")
    page.click("#tag-create button[type=submit]")
    expect(page.locator("#tag-name")).to_have_text("Trail runners")
    expect(page.locator(".crumbs")).to_contain_text("Shoes › Sneakers")
