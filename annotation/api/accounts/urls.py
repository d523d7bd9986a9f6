"""/api/v1/ routes of accounts: the caller (me/), its token, users and their tokens (admins)."""

from django.urls import path

from annotation.api.accounts.views import MeApi, TokenRotateApi, UserListApi, UserTokenApi

urlpatterns = [
    path("me/", MeApi.as_view(), name="api-me"),
    path("me/token/", TokenRotateApi.as_view(), name="api-token-rotate"),
    path("users/", UserListApi.as_view(), name="api-users"),
    path("users/<int:pk>/token/", UserTokenApi.as_view(), name="api-user-token"),
]
