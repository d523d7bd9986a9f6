"""Review over REST: claim the next product, submit final tags, release a claim, undo the last review.

Same services as the HTML review page (annotation.services.reviews). Errors use the API's one shape:
409 ``conflict`` when another user holds the claim, 409 ``stale_claim`` when the card's claim token no
longer matches the product, 400 ``unknown_tags`` with ``fields.tags`` listing the refused names, 400
``no_tags_unconfirmed`` for an unconfirmed empty tag list, 204 from /review/next/ when nothing is left
to review. Review responses are never cached (``Cache-Control: no-store``). The review/next card gives
each suggestion the reason the HTML card shows on its chip (annotation.services.explanations), null while
the model is not loaded in this process, and ``Server-Timing: explain`` with what explaining cost.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.errors import Conflict, ErrorSerializer
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
from annotation.services.explanations import ChipReason, review_card_reasons
from annotation.services.reviews import (
    ClaimConflict,
    ClaimStale,
    NoTagsUnconfirmed,
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


class NoTagsUnconfirmedError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "no_tags_unconfirmed"

    def __init__(self, error: NoTagsUnconfirmed) -> None:
        super().__init__(str(error), "no_tags_unconfirmed")
        self.fields = {"no_tag_applies": error.suggested}


def _no_store(response: Response) -> Response:
    """Review answers carry a claim or its outcome: no cache may hand them out again."""
    add_never_cache_headers(response)
    return response


def _reason_body(reason: ChipReason | None, title: str) -> dict | None:
    if reason is None:
        return None
    return {
        "summary": reason.summary,
        "title_mentions": [{"start": s, "end": e, "text": title[s:e]} for s, e in reason.title_spans],
        "neighbours": list(reason.neighbours),
        "words": list(reason.words),
    }


def _card_response(product: Product) -> Response:
    """The card of ``product`` with a reason per suggestion (the HTML card's, from the same service) and
    what explaining cost as ``Server-Timing``."""
    card = review_card(product=product)
    reasons = review_card_reasons(card)
    version = card.model_version.version if card.model_version else None
    body = {
        "product": product,
        "suggestions": [
            {
                "name": c.name,
                "score": c.score,
                "selected": c.selected,
                "checked": c.checked,
                "model_version": version,
                "reason": _reason_body(reasons.by_tag.get(c.tag_id), product.title),
            }
            for c in card.suggestions
        ],
        "approved_tags": [c for c in card.chips if c.approved_source],
        "model_version": version,
        "claim_expires_at": product.claim_expires_at,
        "claim": card.claim_token,
    }
    response = Response(ReviewCardSerializer(body).data)
    if timing := reasons.server_timing():
        response["Server-Timing"] = timing
    return response


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
            return _no_store(Response(status=status.HTTP_204_NO_CONTENT))
        return _no_store(_card_response(product))


class ProductReviewApi(APIView):
    """Submit a product's final tags: approved tags are replaced, one audit event is written."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=ReviewSubmitSerializer,
        responses={
            200: OpenApiResponse(
                ReviewResultSerializer,
                description="Saved; or, for a repeat of a submit with the same claim and tags, its first result.",
            ),
            400: OpenApiResponse(
                ErrorSerializer,
                description="`invalid`, `unknown_tags`, or `no_tags_unconfirmed` (empty tags, model selected some).",
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "`conflict`: another user holds the claim on this product; `stale_claim`: the product "
                    "changed since the card with this `claim` was handed out (nothing was saved)."
                ),
            ),
        },
    )
    def post(self, request, external_id: str) -> Response:
        product = get_object_or_404(Product, external_id=external_id)
        body = ReviewSubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            event = review_submit(
                product=product,
                user=request.user,
                tags=data["tags"],
                claim=data["claim"],
                no_tag_applies=data["no_tag_applies"],
                # Over REST the proposal is the model's selection (those scoring at least
                # REVIEW_PRECHECK_MIN_SCORE), whatever the HTML card's pre-checking setting.
                prechecked=True,
            )
        except UnknownTags as exc:
            raise UnknownTagsError(exc) from exc
        except NoTagsUnconfirmed as exc:
            raise NoTagsUnconfirmedError(exc) from exc
        except ClaimStale as exc:
            raise Conflict(str(exc), "stale_claim", fields={"claim": [str(exc)]}) from exc
        except ClaimConflict as exc:
            raise Conflict(str(exc)) from exc
        return _no_store(Response(ReviewResultSerializer(event).data))


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
