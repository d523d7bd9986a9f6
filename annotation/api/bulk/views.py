"""Tag-centric bulk review over REST (operators): a tag's candidates, bulk decisions, bulk actions and undo.

``GET tags/{id}/candidates/`` pages the active model's candidates for the tag (keyset ``cursor``, 100 a
page); ``POST tags/{id}/bulk-review/`` accepts or rejects the tag for listed products or for every
candidate of a filter (annotation.services.bulk: one audited event per product, claimed products skipped);
200 with a per-product answer when it ran in the request, 202 with the job id when it runs in the
background (over ``BULK_REVIEW_INLINE_MAX`` products): poll ``bulk-actions/{id}/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.bulk.serializers import (
    BulkActionSerializer,
    BulkOutcomeSerializer,
    BulkReviewSerializer,
    CandidatePageSerializer,
    CandidateQuerySerializer,
    CandidateRowSerializer,
)
from annotation.api.errors import ErrorSerializer
from annotation.api.permissions import IsOperator
from annotation.models import BulkAction, Tag
from annotation.selectors.bulk import CandidateFilterError, bulk_action_queryset, tag_candidates
from annotation.services.bulk import (
    BulkOutcome,
    BulkReviewError,
    bulk_action_undo,
    bulk_review_filter,
    bulk_review_products,
)

BAD_REQUEST = OpenApiResponse(ErrorSerializer, description="Invalid input; `fields` names it.")


@contextmanager
def bulk_errors() -> Iterator[None]:
    try:
        yield
    except BulkReviewError as exc:
        raise ValidationError({exc.field: [str(exc)]}) from exc
    except CandidateFilterError as exc:
        raise ValidationError({exc.field: [str(exc)]}) from exc


def outcome_body(outcome: BulkOutcome) -> dict:
    action = bulk_action_queryset().get(pk=outcome.action.pk)
    results = [{"external_id": sku, "outcome": "done"} for sku in outcome.done]
    results += [{"external_id": sku, "outcome": "skipped", "reason": why} for sku, why in outcome.skipped]
    return BulkOutcomeSerializer(
        {"action": action, "job": action.pk if outcome.queued else None, "results": results}
    ).data


class TagCandidatesApi(APIView):
    """The products the active model suggests this tag for, by score, 100 a page (keyset ``cursor``)."""

    permission_classes = [IsOperator]

    @extend_schema(
        parameters=[CandidateQuerySerializer], responses={200: CandidatePageSerializer, 400: BAD_REQUEST}
    )
    def get(self, request, pk: int) -> Response:
        tag = get_object_or_404(Tag, pk=pk)
        query = CandidateQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.candidate_filter()
        with bulk_errors():
            page = tag_candidates(
                tag=tag,
                filters=filters,
                order=query.validated_data["order"],
                cursor=query.validated_data["cursor"],
            )
        next_url = None
        if page.next_cursor:
            params = request.query_params.copy()
            params["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response(
            {
                "tag": {"id": tag.pk, "name": tag.name},
                "model_version": page.version.version if page.version else None,
                "next": next_url,
                "results": CandidateRowSerializer(page.rows, many=True).data,
            }
        )


class TagBulkReviewApi(APIView):
    """Accept or reject this tag for listed products, or for every candidate of a filter."""

    permission_classes = [IsOperator]
    # JSON only: a form body cannot carry the nested filters (DRF would read them as absent and a form
    # field "reject={}" as a one-product list).
    parser_classes = [JSONParser]

    @extend_schema(
        request=BulkReviewSerializer,
        responses={
            200: OpenApiResponse(BulkOutcomeSerializer, description="Ran now: per product, done or skipped."),
            202: OpenApiResponse(BulkOutcomeSerializer, description="Queued as a background job (`job`)."),
            400: BAD_REQUEST,
        },
    )
    def post(self, request, pk: int) -> Response:
        tag = get_object_or_404(Tag, pk=pk)
        body = BulkReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        by_filter = body.candidate_filter()
        with bulk_errors():
            if by_filter is not None:
                filters, accept = by_filter
                outcome = bulk_review_filter(tag=tag, user=request.user, filters=filters, accept=accept)
            else:
                outcome = bulk_review_products(
                    tag=tag,
                    user=request.user,
                    accept=body.validated_data.get("accept", []),
                    reject=body.validated_data.get("reject", []),
                )
        return Response(
            outcome_body(outcome), status=status.HTTP_202_ACCEPTED if outcome.queued else status.HTTP_200_OK
        )


class BulkActionDetailApi(APIView):
    """One bulk action (a background one's progress: ``status``, ``done``, ``skipped`` of ``total``)."""

    permission_classes = [IsOperator]

    @extend_schema(responses=BulkActionSerializer)
    def get(self, request, pk: int) -> Response:
        return Response(BulkActionSerializer(get_object_or_404(bulk_action_queryset(), pk=pk)).data)


class BulkActionUndoApi(APIView):
    """Undo a whole bulk action as one action (its author or an admin)."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(BulkOutcomeSerializer, description="Undone now: per product."),
            202: OpenApiResponse(BulkOutcomeSerializer, description="Queued as a background job."),
            400: BAD_REQUEST,
        },
    )
    def post(self, request, pk: int) -> Response:
        action = get_object_or_404(BulkAction, pk=pk)
        with bulk_errors():
            outcome = bulk_action_undo(action=action, user=request.user)
        return Response(
            outcome_body(outcome), status=status.HTTP_202_ACCEPTED if outcome.queued else status.HTTP_200_OK
        )
