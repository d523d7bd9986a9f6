"""Forms of the taxonomy pages: tag pickers take a name or an alias, never a select of every tag."""

from __future__ import annotations

from typing import Any

from django import forms

from annotation.models import Tag
from annotation.selectors.catalog import tag_lookup
from annotation.taxonomy.names import TAG_NAME_MAX_LENGTH


class TagPickerField(forms.CharField):
    """A tag named by the admin (its name, an alias or a merged-away name) -> the canonical Tag."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", TAG_NAME_MAX_LENGTH * 2)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> Tag | None:
        text = super().clean(value)
        if not text:
            return None
        tag = tag_lookup(text)
        if tag is None:
            raise forms.ValidationError(f"No tag is named {text!r} (or has it as an alias).")
        return tag


class TagCreateForm(forms.Form):
    name = forms.CharField(max_length=TAG_NAME_MAX_LENGTH * 2, label="Name")
    parent = TagPickerField(required=False, label="Parent (optional)")


class TagRenameForm(forms.Form):
    name = forms.CharField(max_length=TAG_NAME_MAX_LENGTH * 2, label="New name")


class TagMoveForm(forms.Form):
    parent = TagPickerField(required=False, label="New parent (empty: top level)")


class TagAliasForm(forms.Form):
    name = forms.CharField(max_length=TAG_NAME_MAX_LENGTH * 2, label="Alias")


class TagActiveForm(forms.Form):
    """The deactivate / reactivate buttons: ``active`` is exactly "0" or "1" (anything else is a 400,
    never a deactivation)."""

    active = forms.TypedChoiceField(
        choices=[("0", "deactivate"), ("1", "reactivate")], coerce=lambda v: v == "1"
    )


class TagMergeForm(forms.Form):
    into = TagPickerField(label="Merge into")


class TagMergeConfirmForm(forms.Form):
    into = forms.ModelChoiceField(queryset=Tag.objects.all(), widget=forms.HiddenInput)


class HierarchyClosureForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Approving a tag approves its ancestors")
