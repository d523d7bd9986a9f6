"""Query parameters and form values are validated as strictly as the schema documents them.

django-filter and DRF read an empty or unparsable typed value as "not given" (``?root=null`` or
``?updated_since=`` silently mean "no filter"); the API answers 400 instead, naming the parameter, so a
typo never returns the whole catalog.
"""

from __future__ import annotations

from django_filters import rest_framework as filters
from rest_framework import serializers
from rest_framework.utils import html

BOOLEAN_VALUES = {"true", "false", "True", "False", "1", "0"}


class StrictFilterSet(filters.FilterSet):
    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, declared in self.filters.items():
            if name not in self.data:
                continue
            raw = self.data.get(name)
            if isinstance(declared, filters.BooleanFilter) and raw not in BOOLEAN_VALUES:
                self.form.add_error(name, "Must be true or false.")
            elif not isinstance(declared, filters.CharFilter) and str(raw).strip() == "":
                self.form.add_error(name, "This value may not be empty.")
        return valid and not self.form.errors


class _GivenMeansValidated:
    """An optional field that, when given, must be valid: an empty form or query value is a 400, not absent."""

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class PresentDateTimeField(_GivenMeansValidated, serializers.DateTimeField):
    pass


class PresentChoiceField(_GivenMeansValidated, serializers.ChoiceField):
    pass
