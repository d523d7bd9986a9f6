"""HTML review workflow: the review page (htmx partial swaps) and the review actions of the product page.

Views stay thin: validate → one service call (annotation.services.reviews) → render. Each POST answers
an htmx request with the card partial, and a plain form post with a redirect, so the pages also work
with scripting off. Every answer is ``Cache-Control: no-store``: a card from the browser's cache (Back,
Forward) would carry a claim that no longer holds.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from annotation.models import Product
from annotation.roles import is_admin
from annotation.selectors.catalog import tag_check, tag_options
from annotation.selectors.review import (
    CHIP_KEYS,
    claim_held_by,
    last_undoable_submit,
    product_last_submit,
    review_card,
    review_stats,
    title_segments,
)
from annotation.services.explanations import review_card_reasons
from annotation.services.reviews import (
    ClaimConflict,
    ClaimStale,
    NoTagsUnconfirmed,
    NothingToUndo,
    ReviewError,
    UnknownTags,
    review_claim,
    review_claim_next,
    review_skip,
    review_submit,
    review_undo,
)
from annotation.views.access import OperatorRequiredMixin
from annotation.views.review.forms import ReviewSkipForm, ReviewSubmitForm

CARD_TEMPLATE = "annotation/_review_card.html"


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _card_context(
    request: HttpRequest,
    product: Product | None,
    *,
    notice: str = "",
    error: str = "",
    checked: list[str] | None = None,
    version_id: int | None = None,
    confirm_no_tags: str = "",
) -> dict:
    card = review_card(product=product, version_id=version_id) if product is not None else None
    chips: list[dict] = []
    more_chips: list[dict] = []
    extra_names: list[dict] = []
    segments = []
    server_timing = ""
    if card is not None:
        card_reasons = review_card_reasons(card)
        reasons = card_reasons.by_tag
        server_timing = card_reasons.server_timing()
        segments = title_segments(
            card.product.title, {tag_id: reason.title_spans for tag_id, reason in reasons.items()}
        )
        # After a refused submit the card comes back as the operator left it (checked chips, added tags).
        checked_keys = {name.casefold() for name in checked} if checked is not None else None
        rows = [
            {
                "chip": chip,
                "checked": chip.checked if checked_keys is None else chip.name.casefold() in checked_keys,
                "reason": reasons.get(chip.tag_id),
            }
            for chip in card.chips
        ]
        chips = [row for row in rows if row["chip"].visible]
        more_chips = [row for row in rows if not row["chip"].visible]
        chip_keys = {chip.name.casefold() for chip in card.chips}
        extra_names = [{"name": name} for name in checked or [] if name.casefold() not in chip_keys]
        # Keys as review.js numbers them: the visible chips in page order (the "more" ones once opened).
        for index, row in enumerate(chips + extra_names):
            row["key"] = CHIP_KEYS[index] if index < len(CHIP_KEYS) else ""
    return {
        "card": card,
        "chips": chips,
        "more_chips": more_chips,
        "title_segments": segments,
        "extra_names": extra_names,
        "chip_keys": CHIP_KEYS,
        "confirm_no_tags": confirm_no_tags,
        "notice": notice,
        "error": error,
        "stats": review_stats(user=request.user),
        "undo_event": last_undoable_submit(user=request.user),
        "threshold": settings.REVIEW_ACCEPT_THRESHOLD,
        "server_timing": server_timing,
    }


def _timed(response: HttpResponse, context: dict) -> HttpResponse:
    """What explaining the card's chips cost (or waiting for its model to load, while it loads), as
    ``Server-Timing`` entries: browser dev tools show them, the review bench reads them."""
    if context.get("server_timing"):
        response["Server-Timing"] = context["server_timing"]
    return response


def _respond(request: HttpRequest, context: dict, *, status: int = 200) -> HttpResponse:
    if _is_htmx(request):
        return _timed(render(request, CARD_TEMPLATE, {**context, "oob_stats": True}, status=status), context)
    if context.get("confirm_no_tags"):
        return render(request, "annotation/review.html", context, status=status)  # the confirm step
    if context["error"]:
        messages.error(request, context["error"])
    if context["notice"]:
        messages.success(request, context["notice"])
    return redirect("review")


@method_decorator(never_cache, name="dispatch")
class ReviewPageView(OperatorRequiredMixin, View):
    """The review page: the product the operator holds, or the next one claimed from the queue."""

    def get(self, request: HttpRequest) -> HttpResponse:
        # Showing the claim already held is a read; only an operator without one claims (a write).
        product = claim_held_by(user=request.user) or review_claim_next(user=request.user)
        context = _card_context(request, product)
        return _timed(render(request, "annotation/review.html", context), context)


@method_decorator(never_cache, name="dispatch")
class ReviewNextView(OperatorRequiredMixin, View):
    def post(self, request: HttpRequest) -> HttpResponse:
        return _respond(request, _card_context(request, review_claim_next(user=request.user)))


@method_decorator(never_cache, name="dispatch")
class ReviewSubmitView(OperatorRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        product = get_object_or_404(Product, pk=pk)
        form = ReviewSubmitForm(request.POST)
        if not form.is_valid():
            error = " ".join(message for errors in form.errors.values() for message in errors)
            return _respond(request, _card_context(request, product, error=error), status=422)
        data = form.cleaned_data
        tags = data["tags"]
        has_claim = data["claim"] is not None
        try:
            event = review_submit(
                product=product,
                user=request.user,
                tags=tags,
                shown_version_id=data["shown_version"],
                claim=data["claim"],
                no_tag_applies=data["no_tag_applies"],
                visible_tag_ids=data["shown_tags"] if has_claim else None,
                prechecked=data["prechecked"] if has_claim else None,
            )
        except NoTagsUnconfirmed as exc:
            # The confirm step: the same card, nothing saved, and a "no tag applies" button.
            context = _card_context(
                request, product, checked=tags, version_id=data["shown_version"], confirm_no_tags=str(exc)
            )
            return _respond(request, context, status=422)
        except ClaimStale as exc:
            fresh = review_claim_next(user=request.user)
            return _respond(request, _card_context(request, fresh, error=str(exc)), status=409)
        except UnknownTags as exc:
            context = _card_context(
                request,
                product,
                error=str(exc),
                checked=tags,
                version_id=data["shown_version"],
            )
            return _respond(request, context, status=422)
        except ClaimConflict as exc:
            return _respond(request, _card_context(request, None, error=f"Not saved: {exc}"), status=409)
        count = len(event.final_tags)
        notice = f"Saved {product.external_id} with {count} tag{'s' if count != 1 else ''}. Press u to undo."
        if event.replayed:
            notice = f"Already saved {product.external_id} (this card was sent twice; it was saved once)."
        return _respond(request, _card_context(request, review_claim_next(user=request.user), notice=notice))


@method_decorator(never_cache, name="dispatch")
class ReviewSkipView(OperatorRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        product = get_object_or_404(Product, pk=pk)
        claim = ReviewSkipForm(request.POST).cleaned_claim()
        try:
            review_skip(product=product, user=request.user, claim=claim)
        except ClaimStale as exc:
            fresh = review_claim_next(user=request.user)
            return _respond(request, _card_context(request, fresh, error=str(exc)), status=409)
        except ClaimConflict as exc:
            return _respond(request, _card_context(request, None, error=str(exc)), status=409)
        notice = f"Skipped {product.external_id}."
        return _respond(request, _card_context(request, review_claim_next(user=request.user), notice=notice))


@method_decorator(never_cache, name="dispatch")
class ReviewUndoView(OperatorRequiredMixin, View):
    """Undo the operator's last submit (within the claim TTL) and reopen that product."""

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            event = review_undo(user=request.user)
        except ReviewError as exc:
            held = claim_held_by(user=request.user)
            return _respond(request, _card_context(request, held, error=str(exc)), status=409)
        notice = f"Undid your review of {event.product.external_id}: its tags are back as they were."
        return _respond(request, _card_context(request, event.product, notice=notice))


@method_decorator(never_cache, name="dispatch")
class TagOptionsView(OperatorRequiredMixin, View):
    """Autocomplete for the add-tag box: <option>s for a <datalist> (names and aliases)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        query = (request.GET.get("q") or request.GET.get("tag") or "")[:200]  # review card / list filter
        options = tag_options(query=query) if query.strip() else []
        return render(request, "annotation/_tag_options.html", {"options": options})


@method_decorator(never_cache, name="dispatch")
class TagCheckView(OperatorRequiredMixin, View):
    """Whether a typed name can be added: an existing tag (by name or alias), or new (admins only)."""

    def get(self, request: HttpRequest) -> JsonResponse:
        check = tag_check(request.GET.get("name", "")[:400], can_create=is_admin(request.user))
        return JsonResponse({"ok": check.ok, "name": check.name, "new": check.new, "message": check.message})


@method_decorator(never_cache, name="dispatch")
class ProductClaimView(OperatorRequiredMixin, View):
    """ "Review this product": claim it and open it on the review page."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        product = get_object_or_404(Product, pk=pk)
        try:
            review_claim(product=product, user=request.user)
        except ClaimConflict as exc:
            messages.error(request, str(exc))
            return redirect("product-detail", pk=pk)
        return redirect("review")


@method_decorator(never_cache, name="dispatch")
class ProductUndoView(OperatorRequiredMixin, View):
    """Undo the product's last review (from its page, at any time) and open it for review again."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        product = get_object_or_404(Product, pk=pk)
        event = product_last_submit(product=product)
        try:
            if event is None:
                raise NothingToUndo("This product has no review to undo.")
            review_undo(user=request.user, event=event)
        except ReviewError as exc:
            messages.error(request, str(exc))
            return redirect(reverse("product-detail", kwargs={"pk": pk}))
        messages.success(request, f"Undid the last review of {product.external_id}.")
        return redirect("review")
