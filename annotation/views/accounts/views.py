"""Login and logout (Django auth; roles are groups, see annotation.roles), the home redirect, and the
liveness/readiness probe for load balancers and docker-compose healthchecks."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.staticfiles import finders
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): the logout button in the top bar is a form with a CSRF token."""


def home(request: HttpRequest) -> HttpResponse:
    """The site root: the review page (which sends anonymous visitors to the login page)."""
    return redirect("review")


FAVICON = "annotation/favicon.svg"


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico for clients that ask for it without reading the page's <link rel="icon">."""
    with open(finders.find(FAVICON), "rb") as handle:
        response = HttpResponse(handle.read(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not ready"; say which
        return JsonResponse({"status": "error", "database": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok"})
