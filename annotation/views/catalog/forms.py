"""Forms of the HTML product list (the REST API validates the same input with its filter set)."""

from __future__ import annotations

from django import forms

from annotation.selectors.catalog import LIST_SORTS, LIST_STATUSES, ProductListFilter
from annotation.taxonomy.names import TAG_NAME_MAX_LENGTH


class ProductFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(s, s.capitalize()) for s in LIST_STATUSES], required=False, initial="unreviewed"
    )
    sort = forms.ChoiceField(
        choices=[("priority", "Priority"), ("updated", "Last update")], required=False, initial="priority"
    )
    tag = forms.CharField(required=False, max_length=TAG_NAME_MAX_LENGTH, strip=True)
    q = forms.CharField(required=False, max_length=200, strip=True, label="Text")
    cursor = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def list_filter(self) -> ProductListFilter:
        data = self.cleaned_data
        status = data.get("status") or "unreviewed"
        sort = data.get("sort") or "priority"
        assert status in LIST_STATUSES and sort in LIST_SORTS  # guaranteed by the choices
        return ProductListFilter(
            status=status, sort=sort, tag=data.get("tag") or "", text=data.get("q") or ""
        )
