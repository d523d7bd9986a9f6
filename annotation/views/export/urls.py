"""HTML routes of the exports page (admins): start an export, watch its jobs, download a file."""

from django.urls import path

from annotation.views.export.views import ExportDownloadView, ExportsJobsView, ExportsPageView

urlpatterns = [
    path("exports/", ExportsPageView.as_view(), name="exports"),
    path("exports/jobs/", ExportsJobsView.as_view(), name="exports-jobs"),
    path("exports/<int:pk>/download/", ExportDownloadView.as_view(), name="export-download"),
]
