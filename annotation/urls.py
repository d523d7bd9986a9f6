"""HTML routes, one module per area (annotation/views/<area>/urls.py beside its views and forms).

No two areas' routes match the same path, so the include order below is free (tests/annotation/test_routes.py).
"""

from django.urls import include, path

urlpatterns = [
    path("", include("annotation.views.accounts.urls")),  # home, login, logout
    path("", include("annotation.views.review.urls")),  # review page, product claim/undo
    path("", include("annotation.views.catalog.urls")),  # product list, product page
    path("", include("annotation.views.taxonomy.urls")),  # taxonomy pages
    path("", include("annotation.views.bulk.urls")),  # a tag's candidate grid, bulk decisions
    path("", include("annotation.views.models.urls")),  # models page, training progress
    path("", include("annotation.views.export.urls")),  # exports page
    path("", include("annotation.views.dashboard.urls")),  # /dashboard/
]
