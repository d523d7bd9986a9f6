"""/api/v1/ routes, one module per area (annotation/api/<area>/urls.py beside its views and serializers).

No two areas' routes match the same path, so the include order below is free (tests/annotation/test_routes.py
resolves every route under every order of the areas).
"""

from django.urls import include, path

urlpatterns = [
    path("", include("annotation.api.catalog.urls")),  # products, imports
    path("", include("annotation.api.review.urls")),  # review/next|undo, products/{id}/review|release
    path("", include("annotation.api.taxonomy.urls")),  # tags, aliases, merges
    path("", include("annotation.api.bulk.urls")),  # tags/{id}/candidates|bulk-review, bulk-actions
    path("", include("annotation.api.models.urls")),  # model versions, training jobs, refreshes, strategy
    path("", include("annotation.api.export.urls")),  # approved-tags export, export jobs
    path("", include("annotation.api.accounts.urls")),  # me, tokens, users
]
