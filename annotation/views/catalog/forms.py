"""Forms of the HTML product list (the REST API validates the same input with its filter set; both resolve
the catalog-search criteria with annotation.selectors.search.product_search_resolve)."""

from __future__ import annotations

from django import forms

from annotation.selectors.catalog import LIST_SORTS, LIST_STATUSES, ProductListFilter
from annotation.selectors.models import model_version_queryset
from annotation.selectors.search import ProductSearch, SearchParamError, product_search_resolve
from annotation.taxonomy.names import TAG_NAME_MAX_LENGTH

SORT_LABELS = {
    "priority": "Priority",
    "updated": "Last update, latest first",
    "updated_asc": "Last update, earliest first",
    "score": "Score of the suggested tag, highest first",
    "score_asc": "Score of the suggested tag, lowest first",
}
# The form field of each parameter product_search_resolve may name in an error.
SEARCH_FIELDS = {
    "suggested_tag": "suggested_tag",
    "min_score": "min_score",
    "max_score": "max_score",
    "model_version": "model_version",
    "disagreement": "disagreement",
    "category": "category",
    "ordering": "sort",
    "status": "status",
}


class ProductFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(s, s.capitalize()) for s in LIST_STATUSES], required=False, initial="unreviewed"
    )
    sort = forms.ChoiceField(
        choices=[(s, SORT_LABELS[s]) for s in LIST_SORTS], required=False, initial="priority"
    )
    tag = forms.CharField(required=False, max_length=TAG_NAME_MAX_LENGTH, strip=True, label="Approved tag")
    q = forms.CharField(required=False, max_length=200, strip=True, label="Text")
    suggested_tag = forms.CharField(required=False, max_length=TAG_NAME_MAX_LENGTH, strip=True)
    min_score = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Score from")
    max_score = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Score to")
    disagreement = forms.BooleanField(required=False, label="Model and approved tags disagree")
    category = forms.CharField(required=False, max_length=1000, strip=True, label="Category starts with")
    model_version = forms.ChoiceField(required=False, label="Model version")
    cursor = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        versions = model_version_queryset().values_list("version", flat=True)
        self.fields["model_version"].choices = [("", "Active version")] + [(v, v) for v in versions]
        self.search: ProductSearch | None = None

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        sort = data.get("sort") or "priority"
        filters = ProductListFilter(status=data.get("status") or "unreviewed", sort=sort)
        given = any(
            data.get(name) not in (None, "", False)
            for name in (
                "suggested_tag",
                "min_score",
                "max_score",
                "disagreement",
                "category",
                "model_version",
            )
        )
        if not given and not sort.startswith("score"):
            return data
        try:
            self.search = product_search_resolve(
                suggested_tag=data.get("suggested_tag") or "",
                min_score=data.get("min_score"),
                max_score=data.get("max_score"),
                model_version=data.get("model_version") or "",
                disagreement=bool(data.get("disagreement")),
                category=data.get("category") or "",
                order=filters.order.name if sort.startswith("score") else "-id",
            )
        except SearchParamError as exc:
            self.add_error(SEARCH_FIELDS.get(exc.param), exc.message)
        return data

    def list_filter(self) -> ProductListFilter:
        data = self.cleaned_data
        status = data.get("status") or "unreviewed"
        sort = data.get("sort") or "priority"
        assert status in LIST_STATUSES and sort in LIST_SORTS  # guaranteed by the choices
        return ProductListFilter(
            status=status, sort=sort, tag=data.get("tag") or "", text=data.get("q") or "", search=self.search
        )
