"""Model registry API: versions, training, activation (rollback), the suggestion refresh, the AL strategy."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.errors import Conflict
from annotation.api.limits import LimitedJSONParser
from annotation.api.models.serializers import (
    AutoApprovalRevertSerializer,
    AutoApprovalSettingsSerializer,
    AutoApprovalStateSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    StrategySerializer,
    SuggestionRefreshSerializer,
    TrainingJobCreatedSerializer,
    TrainingJobSerializer,
)
from annotation.api.permissions import IsAdmin, ReadOperatorWriteAdmin
from annotation.models import ModelVersion, TrainingTrigger
from annotation.selectors.auto_approval import auto_approval_state
from annotation.selectors.models import model_version_queryset, training_job_latest_id, training_job_queryset
from annotation.services.auto_approval import (
    AutoApprovalSettingsError,
    auto_approval_revert,
    auto_approval_settings_set,
)
from annotation.services.queue import UnknownStrategy, queue_strategies, queue_strategy, queue_strategy_set
from annotation.services.suggestions import suggestion_refresh_latest
from annotation.services.training import ModelVersionNotReady, model_version_activate, training_job_request


class ModelVersionListApi(generics.ListAPIView):
    """Model versions, newest first, with their headline validation metrics and the active flag."""

    permission_classes = [ReadOperatorWriteAdmin]
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        return model_version_queryset()


class ModelVersionDetailApi(generics.RetrieveAPIView):
    permission_classes = [ReadOperatorWriteAdmin]
    serializer_class = ModelVersionDetailSerializer

    def get_queryset(self):
        return model_version_queryset()


class ModelVersionActivateApi(APIView):
    """Make a ready version the active one (also a rollback); suggestions are refreshed in the background."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={200: ModelVersionSerializer})
    def post(self, request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            version = model_version_activate(version=version, user=request.user)
        except ModelVersionNotReady as exc:
            raise Conflict(str(exc)) from exc
        return Response(ModelVersionSerializer(version).data)


class ModelTrainApi(APIView):
    """Queue a training of a new version from all approved tags (202). At most one job is queued or running:
    asking again returns that job with ``created: false``."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={202: TrainingJobCreatedSerializer})
    def post(self, request) -> Response:
        before = training_job_latest_id()
        job = training_job_request(trigger=TrainingTrigger.API, user=request.user)
        body = {
            "job_id": job.id,
            "status": job.status,
            "created": job.id != before,
            "url": reverse("api-training-job", args=[job.id]),
        }
        return Response(TrainingJobCreatedSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class TrainingJobListApi(generics.ListAPIView):
    permission_classes = [ReadOperatorWriteAdmin]
    serializer_class = TrainingJobSerializer

    def get_queryset(self):
        return training_job_queryset()


class TrainingJobDetailApi(generics.RetrieveAPIView):
    """``{status: queued|running|succeeded|failed, progress, model_version, error, ...}``."""

    permission_classes = [ReadOperatorWriteAdmin]
    serializer_class = TrainingJobSerializer

    def get_queryset(self):
        return training_job_queryset()


class SuggestionRefreshLatestApi(APIView):
    """Progress (done / total) of the active version's suggestion refresh; 404 before the first one."""

    permission_classes = [ReadOperatorWriteAdmin]

    @extend_schema(responses={200: SuggestionRefreshSerializer})
    def get(self, request) -> Response:
        refresh = suggestion_refresh_latest()
        if refresh is None:
            return Response(
                {"error": "not_found", "detail": "No suggestion refresh yet.", "fields": {}},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(SuggestionRefreshSerializer(refresh).data)


class QueueStrategyApi(APIView):
    """The active-learning strategy that orders the review queue (admins change it)."""

    permission_classes = [ReadOperatorWriteAdmin]

    def _body(self, strategy: str) -> dict:
        return {
            "strategy": strategy,
            "choices": [{"name": name, "description": text} for name, text in queue_strategies()],
        }

    @extend_schema(responses={200: StrategySerializer})
    def get(self, request) -> Response:
        return Response(self._body(queue_strategy()))

    @extend_schema(request=StrategySerializer, responses={200: StrategySerializer})
    def put(self, request) -> Response:
        serializer = StrategySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            strategy = queue_strategy_set(strategy=serializer.validated_data["strategy"], user=request.user)
        except UnknownStrategy as exc:
            raise ValidationError({"strategy": [str(exc)]}) from exc
        return Response(self._body(strategy))


class AutoApprovalApi(APIView):
    """Precision-gated auto-approval: settings and state (operators read, admins change).

    ``PUT`` changes the settings it names (e.g. ``{"enabled": true, "target_precision": 0.98}``) and keeps
    the others; turning it on clears a stop. The approval pass then runs in the background."""

    permission_classes = [ReadOperatorWriteAdmin]
    parser_classes = [LimitedJSONParser]  # typed settings: JSON only

    @extend_schema(responses={200: AutoApprovalStateSerializer})
    def get(self, request) -> Response:
        return Response(AutoApprovalStateSerializer(auto_approval_state()).data)

    @extend_schema(request=AutoApprovalSettingsSerializer, responses={200: AutoApprovalStateSerializer})
    def put(self, request) -> Response:
        serializer = AutoApprovalSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            auto_approval_settings_set(user=request.user, **serializer.validated_data)
        except AutoApprovalSettingsError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from exc
        return Response(AutoApprovalStateSerializer(auto_approval_state()).data)


class ModelVersionRevertAutoApprovalsApi(APIView):
    """Remove every pair this version auto-approved that no person confirmed; its products return to the
    review queue and it approves nothing again."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={200: AutoApprovalRevertSerializer})
    def post(self, request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=pk)
        result = auto_approval_revert(version=version, user=request.user)
        return Response(AutoApprovalRevertSerializer(result).data)
