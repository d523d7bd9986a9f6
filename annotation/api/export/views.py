"""Export of approved tags over REST (admin): a streamed file, and background export jobs.

``GET /api/v1/export/approved-tags/?format=jsonl|csv|json&updated_since=…`` streams the export (format in
annotation.io.writers) with the high-water mark in ``X-High-Water-Mark``; memory stays constant however large
the catalog. The same export as a background job: ``POST /api/v1/exports/``, then poll and download.
"""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.errors import Conflict, ErrorSerializer
from annotation.api.export.serializers import (
    ExportEnvelopeSerializer,
    ExportJobCreateSerializer,
    ExportJobSerializer,
    ExportQuerySerializer,
)
from annotation.api.permissions import IsAdmin
from annotation.io.writers import WRITERS, format_timestamp
from annotation.models import ExportJob, JobStatus
from annotation.selectors.exports import approved_tags_export, export_job_queryset
from annotation.services.exports import export_job_create, export_job_file

HIGH_WATER_HEADER = OpenApiParameter(
    "X-High-Water-Mark",
    OpenApiTypes.DATETIME,
    location=OpenApiParameter.HEADER,
    response=[200],
    description="Pass it as `updated_since` in the next export to get only what changed since this one.",
)


class JsonErrorsNegotiation(BaseContentNegotiation):
    """``format`` here picks the export's file format, not a DRF renderer: errors are always JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ApprovedTagsExportApi(APIView):
    """Every product with approved tags (or, with ``updated_since``, those whose tags changed), streamed."""

    permission_classes = [IsAdmin]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(
        parameters=[ExportQuerySerializer, HIGH_WATER_HEADER],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description="JSON Lines: deleted_tag records, product records, then one end record that "
                "carries the high-water mark.",
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One row per product and tag; deletion rows flagged in `record`. Cells starting with "
                "= + - @, tab or CR get a leading ' (no formula runs in a spreadsheet).",
            ),
            (200, "application/json"): ExportEnvelopeSerializer,
            (400, "application/json"): ErrorSerializer,
        },
    )
    def get(self, request) -> StreamingHttpResponse:
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        export = approved_tags_export(
            file_format=query.validated_data["format"], updated_since=query.validated_data["updated_since"]
        )
        response = StreamingHttpResponse(export.chunks(), content_type=export.content_type)
        response["X-High-Water-Mark"] = format_timestamp(export.high_water_mark)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["Cache-Control"] = "no-store"
        return response


class ExportJobListApi(ListAPIView):
    """Export jobs, newest first. POST starts one in the background (202); download it when it succeeded."""

    permission_classes = [IsAdmin]
    serializer_class = ExportJobSerializer

    def get_queryset(self):
        return export_job_queryset()

    @extend_schema(request=ExportJobCreateSerializer, responses={202: ExportJobSerializer})
    def post(self, request) -> Response:
        serializer = ExportJobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = export_job_create(
            file_format=serializer.validated_data["format"],
            updated_since=serializer.validated_data["updated_since"],
            user=request.user,
        )
        return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportJobDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=ExportJobSerializer)
    def get(self, request, pk: int) -> Response:
        job = get_object_or_404(export_job_queryset(), pk=pk)
        return Response(ExportJobSerializer(job).data)


class ExportJobDownloadApi(APIView):
    """The finished job's file (409 while the job is queued or running, or when it failed)."""

    permission_classes = [IsAdmin]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): ExportEnvelopeSerializer,
            (409, "application/json"): OpenApiResponse(
                ErrorSerializer, description="The job has no file yet."
            ),
        },
    )
    def get(self, request, pk: int) -> FileResponse:
        job = get_object_or_404(ExportJob, pk=pk)
        path = export_job_file(job)
        if job.status != JobStatus.SUCCEEDED or not path.exists():
            raise Conflict(f"export job {job.pk} is {job.status}; there is no file to download")
        response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
        response["Content-Type"] = WRITERS[job.file_format].content_type
        if job.high_water_mark:
            response["X-High-Water-Mark"] = format_timestamp(job.high_water_mark)
        return response
