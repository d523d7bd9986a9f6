"""The exports page (admins): start an export of approved tags in the background, watch it, download it."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.views import View
from django.views.generic import TemplateView

from annotation.io.writers import WRITERS
from annotation.models import OPEN_JOB_STATUSES, ExportJob, JobStatus
from annotation.selectors.exports import export_job_queryset
from annotation.services.exports import export_job_create, export_job_file
from annotation.views.access import AdminRequiredMixin
from annotation.views.export.forms import ExportStartForm

JOBS_SHOWN = 20


def exports_context() -> dict:
    jobs = list(export_job_queryset()[:JOBS_SHOWN])
    return {"jobs": jobs, "jobs_open": any(job.status in OPEN_JOB_STATUSES for job in jobs)}


class ExportsPageView(AdminRequiredMixin, TemplateView):
    template_name = "annotation/exports.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", ExportStartForm())
        context.update(exports_context())
        return context

    def post(self, request):
        form = ExportStartForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        job = export_job_create(
            file_format=form.cleaned_data["file_format"],
            updated_since=form.cleaned_data["updated_since"],
            user=request.user,
        )
        messages.success(request, f"Export {job.pk} started.")
        return redirect("exports")


class ExportsJobsView(AdminRequiredMixin, TemplateView):
    """The polled job table."""

    template_name = "annotation/exports_jobs.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(exports_context())
        return context


class ExportDownloadView(AdminRequiredMixin, View):
    def get(self, request, pk: int):
        job = get_object_or_404(ExportJob, pk=pk)
        path = export_job_file(job)
        if job.status != JobStatus.SUCCEEDED or not path.exists():
            raise Http404("This export has no file (yet).")
        response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
        response["Content-Type"] = WRITERS[job.file_format].content_type
        return response
