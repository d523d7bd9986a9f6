"""The candidate grid (HTML): a tag's candidates by score, keyboard selection, bulk accept/reject, undo, and
the precision of each score band beside the grid. Operators and admins, like the review page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View

from annotation.models import BulkAction, JobStatus, Tag
from annotation.roles import is_admin
from annotation.selectors.bulk import (
    CandidateFilter,
    CandidateFilterError,
    active_version,
    bulk_action_queryset,
    bulk_actions_recent,
    candidate_count,
    tag_candidates,
    tag_precision_bands_cached,
)
from annotation.selectors.catalog import tag_lookup
from annotation.services.bulk import (
    BulkOutcome,
    BulkReviewError,
    bulk_action_undo,
    bulk_review_filter,
    bulk_review_products,
)
from annotation.views.access import OperatorRequiredMixin
from annotation.views.bulk.forms import BulkDecisionForm, CandidateFilterForm

# The skipped products a message lists by name (the rest are counted).
SKIPPED_SHOWN = 10


def _filter_form(data) -> tuple[CandidateFilterForm, CandidateFilter, str, str]:
    form = CandidateFilterForm(data)
    if form.is_valid():
        return form, form.candidate_filter(), form.sort_order(), form.cleaned_data.get("cursor") or ""
    return form, CandidateFilter(status="unreviewed"), "-score", ""


def _grid_url(tag: Tag, query: str) -> str:
    url = reverse("tag-candidates", args=[tag.pk])
    return f"{url}?{query}" if query else url


def _report(request: HttpRequest, outcome: BulkOutcome, verb: str) -> None:
    action = outcome.action
    if outcome.queued:
        messages.info(
            request,
            f"{verb} {action.total:,} products runs in the background (bulk action {action.pk}); "
            "its progress is on the bulk action's page.",
        )
        return
    text = f"{verb}: {len(outcome.done):,} product{'s' if len(outcome.done) != 1 else ''} done"
    if outcome.skipped:
        listed = "; ".join(f"{sku}: {why}" for sku, why in outcome.skipped[:SKIPPED_SHOWN])
        more = len(outcome.skipped) - SKIPPED_SHOWN
        text += f", {len(outcome.skipped):,} skipped ({listed}{f'; and {more} more' if more > 0 else ''})"
    messages.success(request, text + f" (bulk action {action.pk}).")


class TagCandidatesView(OperatorRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        tag = get_object_or_404(Tag, pk=pk)
        form, filters, order, cursor = _filter_form(request.GET)
        error = ""
        if form.errors:
            error = "Some filters were invalid: " + "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
            )
        try:
            page = tag_candidates(tag=tag, filters=filters, order=order, cursor=cursor)
        except CandidateFilterError as exc:
            error = str(exc)
            page = tag_candidates(tag=tag, filters=filters, order=order)
        query = request.GET.copy()
        query.pop("cursor", None)
        next_query = ""
        if page.next_cursor:
            following = query.copy()
            following["cursor"] = page.next_cursor
            next_query = following.urlencode()
        recent = bulk_actions_recent(tag=tag)
        return render(
            request,
            "annotation/tag_candidates.html",
            {
                "tag": tag,
                "form": form,
                "page": page,
                "error": error,
                "recent": [
                    {
                        "action": a,
                        "can_undo": a.kind == "decide"
                        and not a.undone
                        and a.status == JobStatus.SUCCEEDED
                        and (a.created_by_id == request.user.pk or is_admin(request.user)),
                    }
                    for a in recent
                ],
                "filter_query": query.urlencode(),
                "next_query": next_query,
                "is_later_page": bool(cursor),
            },
        )


class TagCandidatesBandsView(OperatorRequiredMixin, View):
    """The precision-by-band table beside the grid (loaded after the page: see BANDS_CACHE_SECONDS)."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        tag = get_object_or_404(Tag, pk=pk)
        version = active_version()
        bands, computed = tag_precision_bands_cached(tag=tag, version=version) if version else ([], None)
        return render(
            request, "annotation/_precision_bands.html", {"tag": tag, "bands": bands, "computed": computed}
        )


class TagCandidatesCountView(OperatorRequiredMixin, View):
    """How many candidates the filter selects (what "select all with score >= s" would decide)."""

    def get(self, request: HttpRequest, pk: int) -> JsonResponse:
        tag = get_object_or_404(Tag, pk=pk)
        form = CandidateFilterForm(request.GET)
        if not form.is_valid():
            return JsonResponse({"error": "invalid filter", "fields": form.errors}, status=400)
        return JsonResponse({"count": candidate_count(tag=tag, filters=form.candidate_filter())})


class TagCandidatesDecideView(OperatorRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        tag = get_object_or_404(Tag, pk=pk)
        form = BulkDecisionForm(request.POST)
        filter_form, filters, _, _ = _filter_form(request.POST)
        query = request.POST.get("filter_query", "")
        if not form.is_valid() or filter_form.errors:
            problems = {**form.errors, **filter_form.errors}
            messages.error(request, "; ".join(" ".join(errors) for errors in problems.values()))
            return redirect(_grid_url(tag, query))
        accept = form.cleaned_data["decision"] == "accept"
        verb = f"{'Accepted' if accept else 'Rejected'} {tag.name}"
        try:
            if form.cleaned_data["by_filter"]:
                outcome = bulk_review_filter(tag=tag, user=request.user, filters=filters, accept=accept)
            else:
                ids = form.external_ids()
                outcome = bulk_review_products(
                    tag=tag, user=request.user, accept=ids if accept else [], reject=[] if accept else ids
                )
        except BulkReviewError as exc:
            messages.error(request, str(exc))
            return redirect(_grid_url(tag, query))
        _report(request, outcome, verb)
        return redirect(_grid_url(tag, query))


class BulkActionUndoView(OperatorRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        action = get_object_or_404(BulkAction, pk=pk)
        query = request.POST.get("filter_query", "")
        try:
            outcome = bulk_action_undo(action=action, user=request.user)
        except BulkReviewError as exc:
            messages.error(request, str(exc))
        else:
            _report(request, outcome, f"Undid bulk action {action.pk} on {action.tag.name}")
        return redirect(_grid_url(action.tag, query))


class BulkActionView(OperatorRequiredMixin, View):
    """One bulk action: its counts and skipped products (a background one's progress, polled)."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        action = get_object_or_404(bulk_action_queryset(), pk=pk)
        return render(request, "annotation/bulk_action.html", {"action": action})


class CandidatesByNameView(OperatorRequiredMixin, View):
    """``?tag=<name>`` (the dashboard's per-tag table names tags) -> that tag's candidate grid."""

    def get(self, request: HttpRequest) -> HttpResponse:
        tag = tag_lookup(request.GET.get("tag", ""))
        if tag is None:
            messages.error(request, f"No tag is called {request.GET.get('tag', '')!r}.")
            return redirect("dashboard")
        return redirect("tag-candidates", pk=tag.pk)
