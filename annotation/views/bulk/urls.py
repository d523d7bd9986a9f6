"""HTML routes of tag-centric bulk review (operators): a tag's candidate grid, bulk decisions, undo."""

from django.urls import path

from annotation.views.bulk import views

urlpatterns = [
    path("tags/<int:pk>/candidates/", views.TagCandidatesView.as_view(), name="tag-candidates"),
    path(
        "tags/<int:pk>/candidates/bands/", views.TagCandidatesBandsView.as_view(), name="tag-candidates-bands"
    ),
    path(
        "tags/<int:pk>/candidates/count/", views.TagCandidatesCountView.as_view(), name="tag-candidates-count"
    ),
    path(
        "tags/<int:pk>/candidates/decide/",
        views.TagCandidatesDecideView.as_view(),
        name="tag-candidates-decide",
    ),
    path("candidates/", views.CandidatesByNameView.as_view(), name="candidates-by-name"),
    path("bulk-actions/<int:pk>/", views.BulkActionView.as_view(), name="bulk-action"),
    path("bulk-actions/<int:pk>/undo/", views.BulkActionUndoView.as_view(), name="bulk-action-undo"),
]
