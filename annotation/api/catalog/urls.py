"""/api/v1/ routes of the catalog: products and imports.

The product detail takes any external id, "/" included (merchant SKUs contain slashes), except one that
ends in an action of the review routes (``…/review/``, ``…/release/``): its converter
(annotation.api.converters) leaves those paths to annotation.api.review.urls, in any include order.
"""

from django.urls import path, register_converter

from annotation.api.catalog.views import ImportDetailApi, ImportListApi, ProductDetailApi, ProductListApi
from annotation.api.converters import ProductExternalIdConverter

register_converter(ProductExternalIdConverter, "product_external_id")

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="api-products"),
    path("products/<product_external_id:external_id>/", ProductDetailApi.as_view(), name="api-product"),
    path("imports/", ImportListApi.as_view(), name="api-imports"),
    path("imports/<int:pk>/", ImportDetailApi.as_view(), name="api-import"),
]
