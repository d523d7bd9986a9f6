"""Input and output shapes of the accounts API: users and tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.roles import ADMIN, OPERATOR, ROLES


def role_of(user) -> str | None:
    """The user's role from prefetched groups (no query per user in lists)."""
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    if ADMIN in names:
        return ADMIN
    return OPERATOR if OPERATOR in names else None


class UserSerializer(serializers.ModelSerializer):
    email = serializers.CharField(read_only=True, help_text="May be empty.")
    role = serializers.SerializerMethodField()
    has_token = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "role", "is_active", "has_token", "date_joined", "last_login"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ROLES, allow_null=True))
    def get_role(self, user) -> str | None:
        return role_of(user)

    def get_has_token(self, user) -> bool:
        return hasattr(user, "auth_token")


class UserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    role = serializers.ChoiceField(choices=ROLES)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class UserCreatedSerializer(UserSerializer):
    token = serializers.CharField(read_only=True, help_text="The new user's API token (shown once).")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send as `Authorization: Token <token>`.")
