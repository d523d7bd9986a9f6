"""Catalog HTML routes: the taxonomy pages (admins) and the imports/exports pages."""

from django.urls import path

from annotation.views import exports_page

urlpatterns = [
    # Exports (annotation/views/exports_page.py)
    path("exports/", exports_page.ExportsPageView.as_view(), name="exports"),
    path("exports/jobs/", exports_page.ExportsJobsView.as_view(), name="exports-jobs"),
    path("exports/<int:pk>/download/", exports_page.ExportDownloadView.as_view(), name="export-download"),
]
