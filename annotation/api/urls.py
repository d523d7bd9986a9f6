"""/api/v1/ routes, one module per area so each area's routes live beside its views."""

from django.urls import include, path

urlpatterns = [
    path("", include("annotation.api.routes_catalog")),  # products, tags, imports, export, users/tokens
    path("", include("annotation.api.routes_review")),  # review/next, products/{id}/review|release
    path("", include("annotation.api.routes_models")),  # models, training jobs, suggestion refresh
]
