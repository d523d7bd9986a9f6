"""/api/v1/ routes of the review workflow.

``external_id`` may contain "/" (a merchant SKU does; the suffix still matches) but no control character
(annotation.api.converters). Each action under products/<external_id>/ is listed in
annotation.api.converters.PRODUCT_ACTIONS, so the product detail route never takes its paths.
"""

from django.urls import path, register_converter

from annotation.api.converters import ProductActionExternalIdConverter
from annotation.api.review.views import ProductReleaseApi, ProductReviewApi, ReviewNextApi, ReviewUndoApi

register_converter(ProductActionExternalIdConverter, "product_action_external_id")

urlpatterns = [
    path("review/next/", ReviewNextApi.as_view(), name="api-review-next"),
    path("review/undo/", ReviewUndoApi.as_view(), name="api-review-undo"),
    path(
        "products/<product_action_external_id:external_id>/review/",
        ProductReviewApi.as_view(),
        name="api-product-review",
    ),
    path(
        "products/<product_action_external_id:external_id>/release/",
        ProductReleaseApi.as_view(),
        name="api-product-release",
    ),
]
