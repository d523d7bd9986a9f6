"""Taxonomy pages (admins): browse the tag tree, search, create, rename, move, alias, deactivate, merge.

Built for 10,000+ tags: the tree opens one level at a time (htmx loads a level when its <details>
opens), long levels continue on demand, and tag pickers are text inputs with a server-filled
<datalist> — never a select listing every tag. Views are thin: a form validates, one service of
annotation.services.tags does the change, the page re-renders or redirects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View

from annotation.models import Tag
from annotation.selectors.taxonomy import (
    hierarchy_closure_enabled,
    tag_children,
    tag_detail,
    tag_merge_preview,
    tag_paths,
    tag_search,
    taxonomy_counts,
)
from annotation.services.tags import (
    TagRuleError,
    tag_activate,
    tag_alias_add,
    tag_create,
    tag_deactivate,
    tag_merge,
    tag_rename,
    tag_set_parent,
)
from annotation.services.taxonomy_settings import hierarchy_closure_set
from annotation.taxonomy.names import TAG_NAME_MAX_LENGTH
from annotation.views.access import AdminRequiredMixin
from annotation.views.taxonomy.forms import (
    HierarchyClosureForm,
    TagActiveForm,
    TagAliasForm,
    TagCreateForm,
    TagMergeConfirmForm,
    TagMergeForm,
    TagMoveForm,
    TagRenameForm,
)

PICKER_LIMIT = 20


# --- pages ------------------------------------------------------------------------------------------


def _page_context(**extra: Any) -> dict[str, Any]:
    return {
        "roots": tag_children(parent_id=None),
        **taxonomy_counts(),
        "closure_form": HierarchyClosureForm(initial={"enabled": hierarchy_closure_enabled()}),
        "closure_enabled": hierarchy_closure_enabled(),
        **extra,
    }


def _search_results(query: str) -> list[dict[str, Any]]:
    results = tag_search(query) if query.strip() else []
    paths = tag_paths([row["id"] for row in results])
    for row in results:
        row["path"] = paths.get(row["id"], [row["name"]])
    return results


class TaxonomyView(AdminRequiredMixin, View):
    """/tags/: the tree's top level, search, create, and the hierarchy option."""

    def get(self, request: HttpRequest) -> HttpResponse:
        query = request.GET.get("q", "")[:TAG_NAME_MAX_LENGTH]
        context = _page_context(q=query, results=_search_results(query), create_form=TagCreateForm())
        return render(request, "annotation/taxonomy.html", context)


class TaxonomyTreeView(AdminRequiredMixin, View):
    """One level of the tree as <li> items (children of ``parent``; roots without it), ``after`` continues."""

    def get(self, request: HttpRequest) -> HttpResponse:
        parent = request.GET.get("parent") or None
        try:
            parent_id = int(parent) if parent is not None else None
        except ValueError as exc:
            raise Http404("parent must be a tag id") from exc
        level = tag_children(parent_id=parent_id, after=request.GET.get("after") or None)
        return render(request, "annotation/_tag_tree_level.html", {"level": level})


class TaxonomySearchView(AdminRequiredMixin, View):
    """Search results alone (htmx swaps them under the search box while typing)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        query = request.GET.get("q", "")[:TAG_NAME_MAX_LENGTH]
        return render(
            request, "annotation/_tag_search_results.html", {"q": query, "results": _search_results(query)}
        )


class TaxonomyPickerOptionsView(AdminRequiredMixin, View):
    """<option>s for a tag picker's <datalist>: active canonical tags matching what was typed.

    The picker input sends its own value under its field name; ``field`` says which parameter it is.
    """

    def get(self, request: HttpRequest) -> HttpResponse:
        field = request.GET.get("field", "q")
        query = request.GET.get(field, "")[:TAG_NAME_MAX_LENGTH]
        options = tag_search(query, limit=PICKER_LIMIT, active_only=True) if query.strip() else []
        paths = tag_paths([row["id"] for row in options])
        for row in options:
            row["path"] = " › ".join(paths.get(row["id"], [row["name"]]))
        return render(request, "annotation/_tag_picker_options.html", {"options": options})


class TaxonomyCreateView(AdminRequiredMixin, View):
    def post(self, request: HttpRequest) -> HttpResponse:
        form = TagCreateForm(request.POST)
        if form.is_valid():
            try:
                tag = tag_create(name=form.cleaned_data["name"], parent=form.cleaned_data["parent"])
            except TagRuleError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                messages.success(request, f"Created tag {tag.name!r}.")
                return redirect("taxonomy-tag", pk=tag.pk)
        context = _page_context(q="", results=[], create_form=form)
        return render(request, "annotation/taxonomy.html", context, status=400)


class TaxonomySettingsView(AdminRequiredMixin, View):
    def post(self, request: HttpRequest) -> HttpResponse:
        form = HierarchyClosureForm(request.POST)
        form.is_valid()  # a checkbox: absent means off
        enabled = hierarchy_closure_set(enabled=form.cleaned_data.get("enabled", False), user=request.user)
        messages.success(
            request,
            "Hierarchy closure is on: approving a tag approves its ancestors."
            if enabled
            else "Hierarchy closure is off: only the tags chosen are approved.",
        )
        return redirect("taxonomy")


# --- one tag ----------------------------------------------------------------------------------------


def _tag_or_404(pk: int) -> Tag:
    return get_object_or_404(Tag, pk=pk)


def _tag_page(request: HttpRequest, tag: Tag, *, status: int = 200, **forms_: forms.Form) -> HttpResponse:
    context = {
        **tag_detail(tag),
        "rename_form": forms_.get("rename_form") or TagRenameForm(initial={"name": tag.name}),
        "move_form": forms_.get("move_form")
        or TagMoveForm(initial={"parent": tag.parent.name if tag.parent_id else ""}),
        "alias_form": forms_.get("alias_form") or TagAliasForm(),
        "merge_form": forms_.get("merge_form") or TagMergeForm(),
        "children": tag_children(parent_id=tag.pk) if not tag.merged_into_id else None,
    }
    return render(request, "annotation/taxonomy_tag.html", context, status=status)


class TaxonomyTagView(AdminRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return _tag_page(request, _tag_or_404(pk))


class _TagFormAction(AdminRequiredMixin, View):
    """POST a form about one tag to one service; errors re-render the tag page with the form."""

    form_class: type[forms.Form]
    form_name: str

    def act(self, tag: Tag, data: dict[str, Any]) -> str:  # returns the success message
        raise NotImplementedError

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        tag = _tag_or_404(pk)
        form = self.form_class(request.POST)
        if form.is_valid():
            try:
                message = self.act(tag, form.cleaned_data)
            except TagRuleError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                messages.success(request, message)
                return redirect("taxonomy-tag", pk=tag.pk)
        tag.refresh_from_db()
        return _tag_page(request, tag, status=400, **{self.form_name: form})


class TaxonomyRenameView(_TagFormAction):
    form_class, form_name = TagRenameForm, "rename_form"

    def act(self, tag: Tag, data: dict[str, Any]) -> str:
        old = tag.name
        tag = tag_rename(tag=tag, name=data["name"])
        return f"Renamed {old!r} to {tag.name!r}; the old name stays as an alias."


class TaxonomyMoveView(_TagFormAction):
    form_class, form_name = TagMoveForm, "move_form"

    def act(self, tag: Tag, data: dict[str, Any]) -> str:
        parent = data["parent"]
        tag_set_parent(tag=tag, parent=parent)
        return (
            f"Moved {tag.name!r} under {parent.name!r}."
            if parent
            else f"Moved {tag.name!r} to the top level."
        )


class TaxonomyAliasView(_TagFormAction):
    form_class, form_name = TagAliasForm, "alias_form"

    def act(self, tag: Tag, data: dict[str, Any]) -> str:
        alias = tag_alias_add(tag=tag, name=data["name"])
        return f"{alias.name!r} now means {tag.name!r}."


class TaxonomyActiveView(AdminRequiredMixin, View):
    """Deactivate (``active=0``) or reactivate (``active=1``) a tag."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        tag = _tag_or_404(pk)
        form = TagActiveForm(request.POST)
        if not form.is_valid():
            messages.error(request, 'Nothing changed: "active" must be 0 (deactivate) or 1 (reactivate).')
            return _tag_page(request, tag, status=400)
        activate = form.cleaned_data["active"]
        try:
            tag = tag_activate(tag=tag) if activate else tag_deactivate(tag=tag)
        except TagRuleError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"{tag.name!r} is active again."
                if activate
                else f"{tag.name!r} is deactivated: no longer suggested or exported; products keep their history.",
            )
        return redirect("taxonomy-tag", pk=tag.pk)


class TaxonomyMergeView(AdminRequiredMixin, View):
    """GET ?into=<name>: what the merge would move, for confirmation. POST into=<id>: merge."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        source = _tag_or_404(pk)
        form = TagMergeForm(request.GET)
        if not form.is_valid():
            return _tag_page(request, source, status=400, merge_form=form)
        target = form.cleaned_data["into"]
        preview = tag_merge_preview(source=source, target=target)
        confirm = TagMergeConfirmForm(initial={"into": target.pk})
        return render(request, "annotation/taxonomy_merge.html", {**preview, "confirm_form": confirm})

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        source = _tag_or_404(pk)
        form = TagMergeConfirmForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose the tag to merge into.")
            return redirect("taxonomy-tag", pk=source.pk)
        target = form.cleaned_data["into"]
        try:
            tag_merge(source=source, target=target)
        except TagRuleError as exc:
            messages.error(request, f"Not merged: {exc}")
            return redirect(
                f"{reverse('taxonomy-merge', args=[source.pk])}?{urlencode({'into': target.name})}"
            )
        messages.success(
            request,
            f"Merged {source.name!r} into {target.name!r}: its products, suggestions and review history now "
            f"name {target.name!r}, and {source.name!r} is an alias of it. The model learns the new label map "
            "at its next training.",
        )
        return redirect("taxonomy-tag", pk=target.pk)
