"""/api/v1/ routes of the review workflow.

``external_id`` uses the path converter: a merchant SKU may contain "/" (the suffix still matches). Each
action under products/<external_id>/ is listed in annotation.api.converters.PRODUCT_ACTIONS, so the
product detail route never takes its paths.
"""

from django.urls import path

from annotation.api.review.views import ProductReleaseApi, ProductReviewApi, ReviewNextApi, ReviewUndoApi

urlpatterns = [
    path("review/next/", ReviewNextApi.as_view(), name="api-review-next"),
    path("review/undo/", ReviewUndoApi.as_view(), name="api-review-undo"),
    path("products/<path:external_id>/review/", ProductReviewApi.as_view(), name="api-product-review"),
    path("products/<path:external_id>/release/", ProductReleaseApi.as_view(), name="api-product-release"),
]
