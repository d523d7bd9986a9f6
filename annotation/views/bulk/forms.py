"""Forms of the candidate grid (the REST API validates the same input with its serializers)."""

from __future__ import annotations

from django import forms

from annotation.selectors.bulk import (
    CANDIDATE_ORDERS,
    CANDIDATE_STATUSES,
    CandidateFilter,
    CandidateFilterError,
    category_parse,
)


class CandidateFilterForm(forms.Form):
    min_score = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Score from")
    max_score = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="to")
    status = forms.ChoiceField(
        choices=[
            ("unreviewed", "Unreviewed for this tag"),
            ("reviewed", "Reviewed for this tag"),
            ("all", "All"),
        ],
        required=False,
        initial="unreviewed",
    )
    q = forms.CharField(required=False, max_length=200, strip=True, label="Text")
    category = forms.CharField(required=False, max_length=1000, strip=True, label="Category starts with")
    disagreement = forms.BooleanField(required=False, label="Model and approved tags disagree")
    order = forms.ChoiceField(
        choices=[("-score", "Highest score first"), ("score", "Lowest score first")], required=False
    )
    cursor = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def clean(self) -> dict:
        data = super().clean()
        try:
            self.candidate_filter()
        except CandidateFilterError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return data

    def candidate_filter(self) -> CandidateFilter:
        data = self.cleaned_data
        status = data.get("status") or "unreviewed"
        assert status in CANDIDATE_STATUSES  # guaranteed by the choices
        return CandidateFilter(
            min_score=data.get("min_score"),
            max_score=data.get("max_score"),
            status=status,
            text=data.get("q") or "",
            category=category_parse(data.get("category") or ""),
            disagreement=bool(data.get("disagreement")),
        )

    def sort_order(self) -> str:
        order = self.cleaned_data.get("order") or "-score"
        assert order in CANDIDATE_ORDERS
        return order


class BulkDecisionForm(forms.Form):
    """Accept or reject the tag for the selected rows (``products``: external ids), or — with ``by_filter``
    — for every candidate of the grid's filter (its fields come along in the same form)."""

    decision = forms.ChoiceField(choices=[("accept", "Accept"), ("reject", "Reject")])
    products = forms.CharField(required=False, widget=forms.HiddenInput)  # external ids, one per line
    by_filter = forms.BooleanField(required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("by_filter") and not self.external_ids():
            raise forms.ValidationError("Select at least one product first.")
        return data

    def external_ids(self) -> list[str]:
        raw = self.cleaned_data.get("products") or ""
        return [line.strip() for line in raw.splitlines() if line.strip()]
