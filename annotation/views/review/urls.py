"""HTML routes of the review workflow: the review page and its actions, and the review actions of the
product page (claim it for review, undo its last review).

Products are addressed by their internal id in HTML URLs (a merchant SKU may contain "/"); the REST
API addresses them by external_id.
"""

from django.urls import path

from annotation.views.review.views import (
    ProductClaimView,
    ProductUndoView,
    ReviewNextView,
    ReviewPageView,
    ReviewSkipView,
    ReviewSubmitView,
    ReviewUndoView,
    TagCheckView,
    TagOptionsView,
)

urlpatterns = [
    path("review/", ReviewPageView.as_view(), name="review"),
    path("review/next/", ReviewNextView.as_view(), name="review-next"),
    path("review/undo/", ReviewUndoView.as_view(), name="review-undo"),
    path("review/tags/", TagOptionsView.as_view(), name="review-tag-options"),
    path("review/tags/check/", TagCheckView.as_view(), name="review-tag-check"),
    path("review/<int:pk>/submit/", ReviewSubmitView.as_view(), name="review-submit"),
    path("review/<int:pk>/skip/", ReviewSkipView.as_view(), name="review-skip"),
    path("products/<int:pk>/claim/", ProductClaimView.as_view(), name="product-claim"),
    path("products/<int:pk>/undo/", ProductUndoView.as_view(), name="product-undo"),
]
