"""Forms of the HTML review workflow (the REST API validates the same input with DRF serializers)."""

from __future__ import annotations

import uuid

from django import forms
from django.core.exceptions import ValidationError

from annotation.services.reviews import MAX_TAGS_PER_REVIEW
from annotation.taxonomy.names import TAG_NAME_MAX_LENGTH


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
            if len(name) > TAG_NAME_MAX_LENGTH:
                raise ValidationError(
                    f"Tag name {name[:40]!r}… is longer than {TAG_NAME_MAX_LENGTH} characters.",
                    code="too_long",
                )
            if name not in names:
                names.append(name)
        if len(names) > MAX_TAGS_PER_REVIEW:
            raise ValidationError(f"At most {MAX_TAGS_PER_REVIEW} tags per product.", code="too_many")
        return names


class TagIdsField(forms.Field):
    """Repeated ``shown_tags`` fields: the ids of the suggestion chips the card displayed."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[int]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        try:
            return sorted({int(raw) for raw in value})
        except (TypeError, ValueError):
            raise ValidationError("Invalid card: shown tags must be tag ids.", code="invalid") from None


class ReviewSubmitForm(forms.Form):
    tags = TagNamesField(required=False)
    # The model version whose suggestions the card showed: recorded as "shown" in the audit event.
    shown_version = forms.IntegerField(required=False, min_value=1)
    # The card's claim token: the submit is accepted once, and refused when the product changed since.
    claim = forms.UUIDField(required=False)
    # The suggestion chips on the card (those behind "more" only once it was opened): only these count
    # as rejected when left unchecked.
    shown_tags = TagIdsField(required=False)
    # Whether the card started with the model's selected chips checked (the audit's "edited" baseline).
    prechecked = forms.BooleanField(required=False)
    # The confirm step's answer to "no tag checked, but the model suggested some".
    no_tag_applies = forms.BooleanField(required=False)


class ReviewSkipForm(forms.Form):
    # The card's claim token (absent: a form from before tokens; the skip is not checked against it).
    claim = forms.UUIDField(required=False)

    def cleaned_claim(self) -> uuid.UUID | str | None:
        """The posted token, or None when absent or not a token we issued (then checked as stale)."""
        if self.is_valid():
            return self.cleaned_data["claim"]
        return self.data.get("claim") or None
