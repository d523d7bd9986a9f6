"""The models page (admins): versions and metrics, activate/rollback, retrain, live training and suggestion
refresh progress (htmx polling), and the active-learning strategy that orders the review queue."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views import View
from django.views.generic import TemplateView

from annotation.models import OPEN_JOB_STATUSES, ModelVersion, TrainingTrigger
from annotation.selectors.auto_approval import auto_approval_state
from annotation.selectors.models import model_version_active, model_version_queryset, training_job_queryset
from annotation.services.auto_approval import (
    AutoApprovalSettingsError,
    auto_approval_revert,
    auto_approval_settings_set,
)
from annotation.services.queue import UnknownStrategy, queue_strategies, queue_strategy, queue_strategy_set
from annotation.services.suggestions import suggestion_refresh_latest
from annotation.services.training import ModelVersionNotReady, model_version_activate, training_job_request
from annotation.views.access import AdminRequiredMixin

VERSIONS_SHOWN = 50


def models_live_context() -> dict:
    """What the page and its polled partial show: versions, the current/last job, the refresh."""
    versions = list(model_version_queryset()[:VERSIONS_SHOWN])
    for version in versions:  # templates cannot read keys with "@"
        version.p_at_1 = (version.metrics or {}).get("p@1")
        version.p_at_5 = (version.metrics or {}).get("p@5")
    job = training_job_queryset().first()
    refresh = suggestion_refresh_latest()
    return {
        "versions": versions,
        "job": job,
        "job_open": job is not None and job.status in OPEN_JOB_STATUSES,
        "refresh": refresh,
        "refresh_percent": int(100 * refresh.done / refresh.total) if refresh and refresh.total else 100,
        "active": next((v for v in versions if v.is_active), None) or model_version_active(),
    }


class ModelsPageView(AdminRequiredMixin, TemplateView):
    template_name = "annotation/models.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(models_live_context())
        context["strategy"] = queue_strategy()
        context["strategies"] = queue_strategies()
        context["auto"] = auto_approval_state()
        return context


class ModelsLiveView(AdminRequiredMixin, TemplateView):
    """The polled part of the page (progress + versions table)."""

    template_name = "annotation/_models_live.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(models_live_context())
        context["active_version_oob"] = True  # the page's "Active version" follows a background promotion
        return context


class ModelTrainView(AdminRequiredMixin, View):
    def post(self, request):
        job = training_job_request(trigger=TrainingTrigger.MANUAL, user=request.user)
        messages.success(request, f"Training job {job.id} is {job.status}.")
        return redirect("models")


class ModelActivateView(AdminRequiredMixin, View):
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            model_version_activate(version=version, user=request.user)
        except ModelVersionNotReady as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{version.version} is now active; suggestions are being refreshed.")
        return redirect("models")


class QueueStrategyView(AdminRequiredMixin, View):
    def post(self, request):
        try:
            strategy = queue_strategy_set(strategy=request.POST.get("strategy", ""), user=request.user)
        except UnknownStrategy as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"The review queue now uses {strategy}; it is being re-ranked.")
        return redirect("models")


class AutoApprovalSettingsView(AdminRequiredMixin, View):
    """The auto-approval form: every setting at once (an unchecked box is "off")."""

    NUMBERS = {
        "target_precision": float,
        "confidence": float,
        "audit_share": float,
        "audit_min_products": int,
        "min_tag_evidence": int,
    }

    def post(self, request):
        changes: dict = {"enabled": request.POST.get("enabled") in ("on", "1", "true")}
        for name in ("stop_rule", "review_evidence"):
            if request.POST.get(name):
                changes[name] = request.POST[name]
        try:
            for name, kind in self.NUMBERS.items():
                raw = request.POST.get(name, "").strip()
                if raw:
                    try:
                        changes[name] = kind(raw)
                    except ValueError:
                        raise AutoApprovalSettingsError(
                            name, f"{name} must be a number, got {raw!r}"
                        ) from None
            settings = auto_approval_settings_set(user=request.user, **changes)
        except AutoApprovalSettingsError as exc:
            messages.error(request, str(exc))
        else:
            if settings.enabled:
                messages.success(
                    request,
                    f"Auto-approval is on at precision {settings.target_precision:g}; approving in the background.",
                )
            else:
                messages.success(request, "Auto-approval is off.")
        return redirect("models")


class AutoApprovalRevertView(AdminRequiredMixin, View):
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        result = auto_approval_revert(version=version, user=request.user)
        messages.success(
            request,
            f"Reverted {result.version}: {result.pairs_removed} model-approved tags removed, "
            f"{result.products_returned} products back in the review queue.",
        )
        return redirect("models")
