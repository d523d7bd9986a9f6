"""Review over REST: claim the next product, submit final tags, release a claim, undo the last review.

Same services as the HTML review page (annotation.services.reviews). Errors use the API's one shape:
409 ``conflict`` when another user holds the claim, 400 ``unknown_tags`` with ``fields.tags`` listing the
refused names, 204 from /review/next/ when nothing is left to review.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.errors import Conflict
from annotation.api.permissions import IsOperator
from annotation.api.review.serializers import (
    ReleaseResultSerializer,
    ReviewCardSerializer,
    ReviewResultSerializer,
    ReviewSubmitSerializer,
    UndoResultSerializer,
)
from annotation.models import Product
from annotation.selectors.review import review_card
from annotation.services.reviews import (
    ClaimConflict,
    ReviewError,
    UnknownTags,
    review_claim_next,
    review_release,
    review_submit,
    review_undo,
)


class UnknownTagsError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "unknown_tags"

    def __init__(self, error: UnknownTags) -> None:
        super().__init__(str(error), "unknown_tags")
        self.fields = {"tags": error.names}


def _card_body(product: Product) -> dict:
    card = review_card(product=product)
    version = card.model_version.version if card.model_version else None
    return {
        "product": product,
        "suggestions": [
            {"name": c.name, "score": c.score, "selected": c.selected, "model_version": version}
            for c in card.suggestions
        ],
        "approved_tags": [c for c in card.chips if c.approved_source],
        "model_version": version,
        "claim_expires_at": product.claim_expires_at,
    }


class ReviewNextApi(APIView):
    """Claim the next product of the review queue (or get back the one you hold), with its suggestions."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=None,
        responses={200: ReviewCardSerializer, 204: OpenApiResponse(description="Nothing left to review.")},
    )
    def post(self, request) -> Response:
        product = review_claim_next(user=request.user)
        if product is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ReviewCardSerializer(_card_body(product)).data)


class ProductReviewApi(APIView):
    """Submit a product's final tags: approved tags are replaced, one audit event is written."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=ReviewSubmitSerializer,
        responses={
            200: ReviewResultSerializer,
            409: OpenApiResponse(description="Another user holds the claim on this product."),
        },
    )
    def post(self, request, external_id: str) -> Response:
        product = get_object_or_404(Product, external_id=external_id)
        body = ReviewSubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            event = review_submit(product=product, user=request.user, tags=body.validated_data["tags"])
        except UnknownTags as exc:
            raise UnknownTagsError(exc) from exc
        except ClaimConflict as exc:
            raise Conflict(str(exc)) from exc
        return Response(ReviewResultSerializer(event).data)


class ProductReleaseApi(APIView):
    """Give a claim back to the queue (your own; admins may release anyone's)."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=None,
        responses={
            200: ReleaseResultSerializer,
            409: OpenApiResponse(description="Another user holds the claim."),
        },
    )
    def post(self, request, external_id: str) -> Response:
        product = get_object_or_404(Product, external_id=external_id)
        try:
            released = review_release(product=product, user=request.user)
        except ClaimConflict as exc:
            raise Conflict(str(exc)) from exc
        return Response(ReleaseResultSerializer({"product": product.external_id, "released": released}).data)


class ReviewUndoApi(APIView):
    """Undo your last review (within the claim TTL): the tags it replaced come back, the product is yours again."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=None,
        responses={
            200: UndoResultSerializer,
            409: OpenApiResponse(description="Nothing to undo, or not allowed."),
        },
    )
    def post(self, request) -> Response:
        try:
            event = review_undo(user=request.user)
        except ReviewError as exc:
            raise Conflict(str(exc)) from exc
        return Response(UndoResultSerializer(event).data)
