"""HTML routes of the catalog: the product list and the product page (operators).

Products are addressed by their internal id in HTML URLs (a merchant SKU may contain "/"); the REST
API addresses them by external_id. The product page's review actions live in annotation.views.review.urls.
"""

from django.urls import path

from annotation.views.catalog.views import ProductDetailView, ProductListView

urlpatterns = [
    path("products/", ProductListView.as_view(), name="product-list"),
    path("products/<int:pk>/", ProductDetailView.as_view(), name="product-detail"),
]
