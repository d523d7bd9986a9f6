"""The form that starts an export from the exports page."""

from __future__ import annotations

from django import forms

from annotation.io.writers import EXPORT_FORMATS


class ExportStartForm(forms.Form):
    file_format = forms.ChoiceField(label="Format", choices=[(f, f.upper()) for f in EXPORT_FORMATS])
    updated_since = forms.DateTimeField(
        label="Changed since (optional)",
        required=False,
        help_text="ISO-8601, e.g. the high-water mark of the last export; empty exports everything.",
    )
