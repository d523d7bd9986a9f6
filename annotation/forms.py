"""Forms of the HTML review workflow (the REST API validates the same input with DRF serializers)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from annotation.selectors.catalog import LIST_SORTS, LIST_STATUSES, ProductListFilter

MAX_TAGS_PER_REVIEW = 200
TAG_NAME_MAX_CHARS = 200


class TagNamesField(forms.Field):
    """A list of tag names posted as repeated ``tags`` fields (checked chips and added tags)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        names: list[str] = []
        for raw in value:
            name = " ".join(str(raw).split())
            if not name:
                continue
            if len(name) > TAG_NAME_MAX_CHARS:
                raise ValidationError(
                    f"Tag name {name[:40]!r}… is longer than {TAG_NAME_MAX_CHARS} characters.",
                    code="too_long",
                )
            if name not in names:
                names.append(name)
        if len(names) > MAX_TAGS_PER_REVIEW:
            raise ValidationError(f"At most {MAX_TAGS_PER_REVIEW} tags per product.", code="too_many")
        return names


class ReviewSubmitForm(forms.Form):
    tags = TagNamesField(required=False)
    # The model version whose suggestions the card showed: recorded as "shown" in the audit event.
    shown_version = forms.IntegerField(required=False, min_value=1)


class ProductFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(s, s.capitalize()) for s in LIST_STATUSES], required=False, initial="unreviewed"
    )
    sort = forms.ChoiceField(
        choices=[("priority", "Priority"), ("updated", "Last update")], required=False, initial="priority"
    )
    tag = forms.CharField(required=False, max_length=TAG_NAME_MAX_CHARS, strip=True)
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
