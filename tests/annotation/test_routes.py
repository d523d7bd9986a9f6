"""URL routing: the per-area route tables resolve every path the same way in any include order.

The REST API addresses products by the merchant's external id, which may contain "/", and the review
area adds action routes under the same prefix (products/<external_id>/review/, …/release/). The product
detail route must never take an action's path, whichever area's table Django tries first.
"""

from __future__ import annotations

import itertools
import re
import types

import pytest
from django.urls import NoReverseMatch, Resolver404, URLPattern, URLResolver, include, path, resolve, reverse
from django.urls.resolvers import RegexPattern

import annotation.api.urls
import annotation.urls
from annotation.api.converters import PRODUCT_ACTIONS

# path -> (url name, kwargs) as the API resolves it (unchanged since the routes lived in routes_*.py).
API_PRODUCT_PATHS = {
    "products/": ("api-products", {}),
    "products/a/": ("api-product", {"external_id": "a"}),
    "products/a/b/": ("api-product", {"external_id": "a/b"}),
    "products/a/b/c/": ("api-product", {"external_id": "a/b/c"}),
    "products/a/review/": ("api-product-review", {"external_id": "a"}),
    "products/a/release/": ("api-product-release", {"external_id": "a"}),
    "products/a/b/review/": ("api-product-review", {"external_id": "a/b"}),
    "products/a/b/c/release/": ("api-product-release", {"external_id": "a/b/c"}),
    "products/a/review/review/": ("api-product-review", {"external_id": "a/review"}),
    "products/a/review/release/": ("api-product-release", {"external_id": "a/review"}),
    "products/a/release/review/": ("api-product-review", {"external_id": "a/release"}),
    "products/review/": ("api-product", {"external_id": "review"}),
    "products/release/": ("api-product", {"external_id": "release"}),
    "products/review/review/": ("api-product-review", {"external_id": "review"}),
    "products/a/reviewx/": ("api-product", {"external_id": "a/reviewx"}),
    "products/a/review/x/": ("api-product", {"external_id": "a/review/x"}),
    "products/a//": ("api-product", {"external_id": "a/"}),
    "products/3/claim/": ("api-product", {"external_id": "3/claim"}),
    "products/SKU-1%2F2/": ("api-product", {"external_id": "SKU-1%2F2"}),
    "products//review/": None,
    "products/a": None,
}

# A path of every other API route and of every HTML route.
OTHER_API_PATHS = [
    "review/next/",
    "review/undo/",
    "tags/",
    "tags/1/",
    "tags/1/aliases/",
    "tags/1/merge/",
    "imports/",
    "imports/2/",
    "export/approved-tags/",
    "exports/",
    "exports/1/",
    "exports/1/download/",
    "me/",
    "me/token/",
    "users/",
    "users/4/token/",
    "models/",
    "models/train/",
    "models/2/",
    "models/2/activate/",
    "training-jobs/",
    "training-jobs/1/",
    "suggestion-refreshes/latest/",
    "queue/strategy/",
]
HTML_PATHS = [
    "",
    "login/",
    "logout/",
    "review/",
    "review/next/",
    "review/undo/",
    "review/tags/",
    "review/tags/check/",
    "review/3/submit/",
    "review/3/skip/",
    "products/",
    "products/3/",
    "products/3/claim/",
    "products/3/undo/",
    "products/a/",
    "tags/",
    "tags/tree/",
    "tags/search/",
    "tags/options/",
    "tags/create/",
    "tags/settings/",
    "tags/3/",
    "tags/3/rename/",
    "tags/3/move/",
    "tags/3/aliases/",
    "tags/3/active/",
    "tags/3/merge/",
    "exports/",
    "exports/jobs/",
    "exports/3/download/",
    "models/",
    "models/live/",
    "models/train/",
    "models/3/activate/",
    "models/strategy/",
    "dashboard/",
    "dashboard/per-tag/",
    "dashboard/suspicious/",
]


def _area_modules(urlconf: types.ModuleType) -> list[types.ModuleType]:
    """The per-area route modules a top-level route table includes, in its order."""
    modules = [pattern.urlconf_name for pattern in urlconf.urlpatterns]
    assert modules and all(isinstance(module, types.ModuleType) for module in modules)
    return modules


def _resolver(api_order: list[types.ModuleType], html_order: list[types.ModuleType]) -> URLResolver:
    """The site's /api/v1/ and HTML routes with the area tables included in the given orders."""
    module = types.ModuleType("shuffled_urls")
    module.urlpatterns = [
        path("api/v1/", include([path("", include(module)) for module in api_order])),
        path("", include([path("", include(module)) for module in html_order])),
    ]
    return URLResolver(RegexPattern(r"^/"), module)


def _resolution(resolver: URLResolver, url: str) -> tuple | None:
    """(url name, kwargs, view) of a path, or None where no route takes it."""
    try:
        match = resolver.resolve(url)
    except Resolver404:
        return None
    return match.url_name, match.kwargs, getattr(match.func, "view_class", match.func)


ALL_PATHS = [f"/api/v1/{p}" for p in [*API_PRODUCT_PATHS, *OTHER_API_PATHS]] + [f"/{p}" for p in HTML_PATHS]


@pytest.mark.parametrize(("api_path", "expected"), API_PRODUCT_PATHS.items())
def test_product_paths_resolve_to_the_detail_or_an_action(api_path, expected):
    url = f"/api/v1/{api_path}"
    if expected is None:
        with pytest.raises(Resolver404):
            resolve(url)
        return
    match = resolve(url)
    assert (match.url_name, match.kwargs) == expected


@pytest.mark.parametrize(
    ("name", "external_id", "url"),
    [
        ("api-product", "a/b", "/api/v1/products/a/b/"),
        ("api-product", "review", "/api/v1/products/review/"),
        ("api-product-review", "a/b", "/api/v1/products/a/b/review/"),
        ("api-product-review", "a/review", "/api/v1/products/a/review/review/"),
        ("api-product-release", "a/b/c", "/api/v1/products/a/b/c/release/"),
    ],
)
def test_product_urls_reverse_and_resolve_back(name, external_id, url):
    assert reverse(name, kwargs={"external_id": external_id}) == url
    match = resolve(url)
    assert (match.url_name, match.kwargs) == (name, {"external_id": external_id})


def test_the_detail_route_refuses_an_id_that_ends_in_an_action():
    # Such an id has no detail URL (the path belongs to the action on its prefix), exactly as before.
    with pytest.raises(NoReverseMatch):
        reverse("api-product", kwargs={"external_id": "a/review"})


def test_every_product_action_route_is_a_declared_action():
    """A new route under products/<external_id>/<suffix>/ must be added to PRODUCT_ACTIONS, or the
    detail route could take its paths when the catalog table is tried first."""
    suffixes = set()
    for module in _area_modules(annotation.api.urls):
        for pattern in module.urlpatterns:
            assert isinstance(pattern, URLPattern)
            found = re.fullmatch(r"products/<[\w:]+>/([^<>]+)/", str(pattern.pattern))
            if found:
                suffixes.add(found.group(1))
    assert suffixes == set(PRODUCT_ACTIONS)


def test_include_order_changes_no_resolution():
    api_areas = _area_modules(annotation.api.urls)
    html_areas = _area_modules(annotation.urls)
    expected = {url: _resolution(_resolver(api_areas, html_areas), url) for url in ALL_PATHS}
    # The site's own resolver agrees with the rebuilt one.
    for url, resolution in expected.items():
        if resolution is not None:
            match = resolve(url)
            assert (match.url_name, match.kwargs) == resolution[:2], url
    assert sum(resolution is None for resolution in expected.values()) == 3  # 2 API paths and /products/a/

    api_orders = list(itertools.permutations(api_areas))  # every order of the API areas
    html_orders = [html_areas[i:] + html_areas[:i] for i in range(len(html_areas))]  # every rotation…
    html_orders += [list(reversed(order)) for order in html_orders]  # …and its reverse
    for index, api_order in enumerate(api_orders):
        html_order = html_orders[index % len(html_orders)]
        resolver = _resolver(list(api_order), html_order)
        for url in ALL_PATHS:
            assert _resolution(resolver, url) == expected[url], (url, api_order, html_order)
