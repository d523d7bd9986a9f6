"""/api/v1/ routes of tag-centric bulk review: a tag's candidates, bulk decisions, bulk actions."""

from django.urls import path

from annotation.api.bulk.views import (
    BulkActionDetailApi,
    BulkActionUndoApi,
    TagBulkReviewApi,
    TagCandidatesApi,
)

urlpatterns = [
    path("tags/<int:pk>/candidates/", TagCandidatesApi.as_view(), name="api-tag-candidates"),
    path("tags/<int:pk>/bulk-review/", TagBulkReviewApi.as_view(), name="api-tag-bulk-review"),
    path("bulk-actions/<int:pk>/", BulkActionDetailApi.as_view(), name="api-bulk-action"),
    path("bulk-actions/<int:pk>/undo/", BulkActionUndoApi.as_view(), name="api-bulk-action-undo"),
]
