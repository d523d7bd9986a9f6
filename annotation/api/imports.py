"""Catalog imports over REST (admin): upload a JSONL/CSV file, get 202 and a job to poll.

A file that is not JSONL or CSV is refused with 400 before a job or a product is written; a body above
``TAGSTUDIO_MAX_UPLOAD_BYTES`` gets 413 from its Content-Length before it is read (annotation.api.limits).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.limits import LimitedFormParser, LimitedMultiPartParser
from annotation.api.permissions import IsAdmin
from annotation.api.serializers_catalog import ImportCreateSerializer, ImportJobSerializer
from annotation.io.readers import FileFormatError
from annotation.models import ImportJob
from annotation.services.imports import import_job_create


class ImportListApi(ListAPIView):
    """Import jobs, newest first. POST uploads a catalog file and starts an import job."""

    permission_classes = [IsAdmin]
    serializer_class = ImportJobSerializer
    queryset = ImportJob.objects.select_related("created_by")
    parser_classes = [LimitedMultiPartParser, LimitedFormParser]

    @extend_schema(
        request={"multipart/form-data": ImportCreateSerializer}, responses={202: ImportJobSerializer}
    )
    def post(self, request) -> Response:
        serializer = ImportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            job = import_job_create(
                source=upload,
                filename=upload.name,
                ignore_tags=serializer.validated_data["ignore_tags"],
                user=request.user,
            )
        except FileFormatError as exc:
            raise ValidationError({"file": [str(exc)]}) from exc
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(APIView):
    """An import job's state: rows imported, rows rejected and why (line, field, reason)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=ImportJobSerializer)
    def get(self, request, pk: int) -> Response:
        job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=pk)
        return Response(ImportJobSerializer(job).data)
