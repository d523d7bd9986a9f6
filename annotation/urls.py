"""HTML routes, one module per area."""

from django.urls import include, path

urlpatterns = [
    path("", include("annotation.views.routes_review")),  # login, review page, product list
    path("", include("annotation.views.routes_models")),  # models page, training progress
    path("", include("annotation.views.routes_catalog")),  # taxonomy, imports/exports pages
    path("", include("annotation.views.routes_dashboard")),  # /dashboard/
]
