"""Users and API tokens: everyone with a role rotates their own token; admins list and create users and
revoke tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.accounts.serializers import (
    TokenSerializer,
    UserCreatedSerializer,
    UserCreateSerializer,
    UserSerializer,
)
from annotation.api.errors import Conflict, ErrorSerializer
from annotation.api.permissions import IsAdmin, IsOperator
from annotation.selectors.accounts import user_exists, user_queryset
from annotation.services.users import token_revoke, token_rotate, user_create


class MeApi(APIView):
    """The signed-in user and their role."""

    permission_classes = [IsOperator]

    @extend_schema(responses=UserSerializer)
    def get(self, request) -> Response:
        return Response(UserSerializer(user_queryset().get(pk=request.user.pk)).data)


class TokenRotateApi(APIView):
    """Replace your own API token: the old one stops working at once. Returns the new one."""

    permission_classes = [IsOperator]

    @extend_schema(request=None, responses=TokenSerializer)
    def post(self, request) -> Response:
        return Response({"token": token_rotate(user=request.user)})


class UserListApi(ListAPIView):
    """Users (admin). POST creates one with a role and returns its first API token."""

    permission_classes = [IsAdmin]
    serializer_class = UserSerializer
    pagination_ordering = "id"

    def get_queryset(self):
        return user_queryset()

    @extend_schema(
        request=UserCreateSerializer,
        responses={
            201: UserCreatedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The username is taken."),
        },
    )
    def post(self, request) -> Response:
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if user_exists(username=data["username"]):
            message = f"user {data['username']!r} already exists"
            raise Conflict(message, fields={"username": [message]})
        try:
            user, token = user_create(
                username=data["username"], password=data["password"], role=data["role"], email=data["email"]
            )
        except DjangoValidationError as exc:  # the password validators
            raise ValidationError({"password": exc.messages}) from exc
        body = dict(UserSerializer(user_queryset().get(pk=user.pk)).data, token=token)
        return Response(body, status=status.HTTP_201_CREATED)


class UserTokenApi(APIView):
    """Revoke a user's API token (admin); they can sign in and rotate a new one."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={204: OpenApiResponse(description="Revoked (or there was no token).")})
    def delete(self, request, pk: int) -> Response:
        user = get_object_or_404(get_user_model(), pk=pk)
        token_revoke(user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)
