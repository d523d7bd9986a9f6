"""HTML routes of accounts: the home redirect, login and logout (the health probe is wired in tagstudio.urls)."""

from django.urls import path

from annotation.views.accounts.views import LoginView, LogoutView, home

urlpatterns = [
    path("", home, name="home"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
]
