"""Login and logout (Django auth; roles are groups, see annotation.roles)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): the logout button in the top bar is a form with a CSRF token."""


def home(request: HttpRequest) -> HttpResponse:
    """The site root: the review page (which sends anonymous visitors to the login page)."""
    return redirect("review")
