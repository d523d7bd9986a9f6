"""/api/v1/ routes of the catalog: products and imports.

The product detail takes any external id, "/" included (merchant SKUs contain slashes), except one that
ends in an action of the review routes (``…/review/``, ``…/release/``): this module is included before
them, so the pattern leaves those paths to annotation.api.review.urls.
"""

from django.urls import path, re_path

from annotation.api.catalog.views import ImportDetailApi, ImportListApi, ProductDetailApi, ProductListApi

# Path suffixes that belong to other routes under products/<external_id>/.
PRODUCT_ACTIONS = ("review", "release")
_ACTIONS = "|".join(PRODUCT_ACTIONS)
_EXTERNAL_ID = rf"(?P<external_id>(?:(?!/(?:{_ACTIONS})/$).)+)"

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="api-products"),
    re_path(rf"^products/{_EXTERNAL_ID}/$", ProductDetailApi.as_view(), name="api-product"),
    path("imports/", ImportListApi.as_view(), name="api-imports"),
    path("imports/<int:pk>/", ImportDetailApi.as_view(), name="api-import"),
]
