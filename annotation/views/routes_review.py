"""HTML routes of the review workflow: login/logout, the review page, the product list and product page.

Products are addressed by their internal id in HTML URLs (a merchant SKU may contain "/"); the REST
API addresses them by external_id.
"""

from django.urls import path

from annotation.views import auth, review

urlpatterns = [
    path("", auth.home, name="home"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("review/", review.ReviewPageView.as_view(), name="review"),
    path("review/next/", review.ReviewNextView.as_view(), name="review-next"),
    path("review/undo/", review.ReviewUndoView.as_view(), name="review-undo"),
    path("review/tags/", review.TagOptionsView.as_view(), name="review-tag-options"),
    path("review/tags/check/", review.TagCheckView.as_view(), name="review-tag-check"),
    path("review/<int:pk>/submit/", review.ReviewSubmitView.as_view(), name="review-submit"),
    path("review/<int:pk>/skip/", review.ReviewSkipView.as_view(), name="review-skip"),
    path("products/", review.ProductListView.as_view(), name="product-list"),
    path("products/<int:pk>/", review.ProductDetailView.as_view(), name="product-detail"),
    path("products/<int:pk>/claim/", review.ProductClaimView.as_view(), name="product-claim"),
    path("products/<int:pk>/undo/", review.ProductUndoView.as_view(), name="product-undo"),
]
