"""/api/v1/ routes of the export: the approved-tags export and background export jobs."""

from django.urls import path

from annotation.api.export.views import (
    ApprovedTagsExportApi,
    ExportJobDetailApi,
    ExportJobDownloadApi,
    ExportJobListApi,
)

urlpatterns = [
    path("export/approved-tags/", ApprovedTagsExportApi.as_view(), name="api-export-approved-tags"),
    path("exports/", ExportJobListApi.as_view(), name="api-exports"),
    path("exports/<int:pk>/", ExportJobDetailApi.as_view(), name="api-export"),
    path("exports/<int:pk>/download/", ExportJobDownloadApi.as_view(), name="api-export-download"),
]
