"""Who may call what: every URL pattern of the project × {anonymous, operator, admin} × every method.

The patterns come from the URL resolver, so an endpoint added anywhere is tested the moment it exists —
and the test fails until ``EXPECTATIONS`` below says who may use it. Each entry names the least role that
may read (GET) and write (POST/PUT/PATCH/DELETE), and the status an allowed request gets (with an empty
body: a 400 still proves the request got past the permission check). From that the expected status of
every request follows:

- a user below the role: API → 401 (anonymous) / 403; HTML page → 302 to the login page (anonymous) / 403;
- a user with the role: the listed status, or 405 for a method the endpoint does not have.

Roles: anonymous < operator < admin (annotation.roles). Anonymous may use the login page, the schema and
the docs, and nothing else of the app.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.regex_helper import normalize
from rest_framework.authtoken.models import Token

from annotation.models import (
    BulkAction,
    BulkKind,
    ExportJob,
    ImportJob,
    Setting,
    SuggestionRefresh,
    Tag,
    TrainingJob,
    TrainingTrigger,
)
from annotation.roles import ADMIN, OPERATOR, roles_ensure
from tests.factories import ModelVersionFactory, ProductFactory, TagFactory

pytestmark = pytest.mark.usefixtures("empty_cache")

ANON, PUBLIC, NOBODY = "anonymous", "public", "nobody"
ROLES = (ANON, OPERATOR, ADMIN)
RANK = {ANON: 0, OPERATOR: 1, ADMIN: 2}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SAFE = {"GET"}


@dataclass(frozen=True)
class Access:
    read: str  # least role for GET: PUBLIC, OPERATOR, ADMIN or NOBODY
    write: str  # least role for POST/PUT/PATCH/DELETE
    ok: dict[str, int | dict[str, int]] = field(default_factory=dict)  # method -> status (or per role)
    denied: int = 403  # the refusal an authenticated user below the role gets (HTML pages)


def access(read: str, write: str, *, denied: int = 403, **ok: int | dict[str, int]) -> Access:
    return Access(read, write, ok, denied)


def every(status: int) -> dict[str, int]:
    return dict.fromkeys(METHODS, status)


def by_role(anonymous: int, operator: int, admin: int) -> dict[str, int]:
    return {ANON: anonymous, OPERATOR: operator, ADMIN: admin}


# --- The expectation table ---------------------------------------------------------------------------------
# Keyed by URL name; statuses are those of an allowed request with an empty body.
EXPECTATIONS: dict[str, Access] = {
    # Public: the login page, the schema and its docs; the health probe for load balancers (says only "ok").
    "login": access(
        PUBLIC,
        PUBLIC,
        GET=by_role(200, 302, 302),  # signed-in users are sent on
        POST=by_role(200, 302, 302),  # empty form: re-rendered with errors
        PUT=by_role(200, 302, 302),
        PATCH=by_role(405, 302, 302),
        DELETE=by_role(405, 302, 302),
    ),
    "logout": access(PUBLIC, PUBLIC, POST=302),
    "home": access(PUBLIC, PUBLIC, **every(302)),  # a redirect to the review page
    "schema": access(PUBLIC, PUBLIC, GET=200),
    "api-docs": access(PUBLIC, PUBLIC, GET=200),
    "healthz": access(PUBLIC, PUBLIC, GET=200),
    "favicon": access(PUBLIC, PUBLIC, GET=200),
    # API — catalog, taxonomy, export, accounts (annotation/api/<area>/urls.py)
    "api-products": access(OPERATOR, OPERATOR, GET=200),
    "api-product": access(OPERATOR, OPERATOR, GET=200),
    "api-tags": access(OPERATOR, ADMIN, GET=200, POST=400),
    "api-tag": access(OPERATOR, ADMIN, GET=200, PATCH=200),
    "api-tag-aliases": access(ADMIN, ADMIN, POST=400),
    "api-tag-merge": access(ADMIN, ADMIN, POST=400),
    # API — tag-centric bulk review (annotation/api/bulk/urls.py): operators decide, as they review
    "api-tag-candidates": access(OPERATOR, OPERATOR, GET=200),
    "api-tag-bulk-review": access(OPERATOR, OPERATOR, POST=400),  # an empty body selects nothing
    "api-bulk-action": access(OPERATOR, OPERATOR, GET=200),
    "api-bulk-action-undo": access(OPERATOR, OPERATOR, POST=400),  # the sample is an undo: not undoable
    "api-imports": access(ADMIN, ADMIN, GET=200, POST=415),  # uploads are multipart
    "api-import": access(ADMIN, ADMIN, GET=200),
    "api-export-approved-tags": access(ADMIN, ADMIN, GET=200),
    "api-exports": access(ADMIN, ADMIN, GET=200, POST=202),
    "api-export": access(ADMIN, ADMIN, GET=200),
    "api-export-download": access(ADMIN, ADMIN, GET=409),  # the sample job has not run
    "api-me": access(OPERATOR, OPERATOR, GET=200),
    "api-token-rotate": access(OPERATOR, OPERATOR, POST=200),
    "api-users": access(ADMIN, ADMIN, GET=200, POST=400),
    "api-user-token": access(ADMIN, ADMIN, DELETE=204),
    # API — review (annotation/api/review/urls.py)
    "api-review-next": access(OPERATOR, OPERATOR, POST=200),
    "api-review-undo": access(OPERATOR, OPERATOR, POST=409),  # nothing to undo
    "api-product-review": access(OPERATOR, OPERATOR, POST=400),
    "api-product-release": access(OPERATOR, OPERATOR, POST=200),
    # API — models and training (annotation/api/models/urls.py)
    "api-models": access(OPERATOR, ADMIN, GET=200),
    "api-model": access(OPERATOR, ADMIN, GET=200),
    "api-models-train": access(ADMIN, ADMIN, POST=202),
    "api-model-activate": access(ADMIN, ADMIN, POST=409),  # the sample version has no artifact
    "api-training-jobs": access(OPERATOR, ADMIN, GET=200),
    "api-training-job": access(OPERATOR, ADMIN, GET=200),
    "api-suggestion-refresh": access(OPERATOR, ADMIN, GET=404),  # no refresh has run yet
    "api-queue-strategy": access(OPERATOR, ADMIN, GET=200, PUT=400),
    "api-auto-approval": access(OPERATOR, ADMIN, GET=200, PUT=400),  # an empty body changes nothing: 400
    "api-model-revert-auto-approvals": access(ADMIN, ADMIN, POST=200),  # nothing to revert: zeros
    # Pages — review and products (operators)
    "review": access(OPERATOR, OPERATOR, GET=200),
    "review-next": access(OPERATOR, OPERATOR, POST=302),
    "review-undo": access(OPERATOR, OPERATOR, POST=302),
    "review-tag-options": access(OPERATOR, OPERATOR, GET=200),
    "review-tag-check": access(OPERATOR, OPERATOR, GET=200),
    "review-submit": access(OPERATOR, OPERATOR, POST=302),
    "review-skip": access(OPERATOR, OPERATOR, POST=302),
    "product-list": access(OPERATOR, OPERATOR, GET=200),
    "product-detail": access(OPERATOR, OPERATOR, GET=200),
    "product-claim": access(OPERATOR, OPERATOR, POST=302),
    "product-undo": access(OPERATOR, OPERATOR, POST=302),
    "dashboard": access(OPERATOR, OPERATOR, GET=200),
    "dashboard-per-tag": access(OPERATOR, OPERATOR, GET=200),
    "dashboard-suspicious": access(OPERATOR, OPERATOR, GET=200),
    # Pages — a tag's candidate grid and bulk decisions (operators, like the review page)
    "tag-candidates": access(OPERATOR, OPERATOR, GET=200),
    "tag-candidates-count": access(OPERATOR, OPERATOR, GET=200),
    "tag-candidates-bands": access(OPERATOR, OPERATOR, GET=200),
    "tag-candidates-decide": access(OPERATOR, OPERATOR, POST=302),  # an empty form: back with a message
    "candidates-by-name": access(OPERATOR, OPERATOR, GET=302),  # no ?tag=: back to the dashboard
    "bulk-action": access(OPERATOR, OPERATOR, GET=200),
    "bulk-action-undo": access(OPERATOR, OPERATOR, POST=302),  # refused (an undo): back with a message
    # Pages — models, taxonomy, exports (admins)
    "models": access(ADMIN, ADMIN, GET=200),
    "models-live": access(ADMIN, ADMIN, GET=200),
    "models-train": access(ADMIN, ADMIN, POST=302),
    "models-activate": access(ADMIN, ADMIN, POST=302),
    "models-strategy": access(ADMIN, ADMIN, POST=302),
    "models-auto-approval": access(ADMIN, ADMIN, POST=302),
    "models-revert-auto-approvals": access(ADMIN, ADMIN, POST=302),
    "taxonomy": access(ADMIN, ADMIN, GET=200),
    "taxonomy-tree": access(ADMIN, ADMIN, GET=200),
    "taxonomy-search": access(ADMIN, ADMIN, GET=200),
    "taxonomy-options": access(ADMIN, ADMIN, GET=200),
    "taxonomy-create": access(ADMIN, ADMIN, POST=400),
    "taxonomy-settings": access(ADMIN, ADMIN, POST=302),
    "taxonomy-tag": access(ADMIN, ADMIN, GET=200),
    "taxonomy-rename": access(ADMIN, ADMIN, POST=400),
    "taxonomy-move": access(ADMIN, ADMIN, POST=302),
    "taxonomy-alias-add": access(ADMIN, ADMIN, POST=400),
    "taxonomy-active": access(ADMIN, ADMIN, POST=400),  # an empty form: neither active=0 nor active=1
    "taxonomy-merge": access(ADMIN, ADMIN, GET=400, POST=302),  # GET previews a merge: needs ?into=
    "exports": access(ADMIN, ADMIN, GET=200, POST=400),
    "exports-jobs": access(ADMIN, ADMIN, GET=200),
    "export-download": access(ADMIN, ADMIN, GET=404),  # the sample job has no file
    # The Django admin site (/admin/): staff only, everyone else is sent to its login page. TagStudio
    # admins are staff and their role grants view permissions on every TagStudio model the site registers
    # (and change on tags: description, (de)activate), so those pages serve them (annotation.roles);
    # add/delete and other apps' models (users, tokens, lock-out records) stay refused (403).
    # A signed-in operator asking for the admin site gets 403 (annotation/admin.py), not a login form.
    "admin:login": access(
        PUBLIC,
        PUBLIC,
        GET=by_role(200, 403, 302),
        POST=by_role(200, 403, 200),
        PUT=by_role(200, 403, 200),
        PATCH=by_role(405, 403, 405),
        DELETE=by_role(405, 403, 405),
    ),
    "admin:index": access(ADMIN, ADMIN, denied=302, **every(200)),
    "admin:logout": access(ADMIN, ADMIN, denied=302, **{**every(302), "GET": 405}),
    "admin:password_change": access(ADMIN, ADMIN, denied=302, GET=200, POST=200, PUT=200),
    "admin:password_change_done": access(ADMIN, ADMIN, denied=302, GET=200),
    "admin:autocomplete": access(ADMIN, ADMIN, denied=302, GET=403),
    "admin:jsi18n": access(ADMIN, ADMIN, denied=302, GET=200),
    "admin:view_on_site": access(ADMIN, ADMIN, denied=302, **every(404)),  # tags have no public page
    "admin:app_list": access(ADMIN, ADMIN, denied=302, **every(200)),  # the TagStudio app page
    "admin/(?P<url>.*)$": access(ADMIN, ADMIN, denied=302, **every(404)),
}
# Every admin model page ("admin:<app>_<model>_<changelist|add|change|delete|history|password_change>")
# and the object shortcut ("admin/<app>/<model>/<object_id>/", a redirect to its change page).
ADMIN_MODEL_PAGE = access(ADMIN, ADMIN, denied=302, **every(403))
ADMIN_OBJECT_REDIRECT = access(ADMIN, ADMIN, denied=302, **every(302))
ADMIN_MODEL_ACTIONS = ("_changelist", "_add", "_change", "_delete", "_history", "_password_change")
# The TagStudio models a role admin may browse in the admin site (annotation.roles.ADMIN_SITE_PERMISSIONS):
# list, page and history; saving a page needs change permission, which only tags grant.
ADMIN_SITE_READABLE = (
    "tag",
    "tagalias",
    "modelversion",
    "importjob",
    "trainingjob",
    "exportjob",
    "suggestionrefresh",
    "setting",
)
ADMIN_SITE_CHANGEABLE = ("tag",)


def expectation(key: str, route: str) -> Access | None:
    if key in EXPECTATIONS:
        return EXPECTATIONS[key]
    readable = re.fullmatch(r"admin:annotation_(\w+?)_(changelist|change|history)", key)
    if readable and readable.group(1) in ADMIN_SITE_READABLE:
        saves = readable.group(2) != "change" or readable.group(1) in ADMIN_SITE_CHANGEABLE
        return access(ADMIN, ADMIN, denied=302, **{**every(200), "POST": 200 if saves else 403})
    if key.startswith("admin:") and key.endswith(ADMIN_MODEL_ACTIONS):
        return ADMIN_MODEL_PAGE
    if re.fullmatch(r"admin/\w+/\w+/<path:object_id>/", key):
        return ADMIN_OBJECT_REDIRECT
    return None


def _strip(regex: str) -> str:
    regex = regex.removeprefix("^")
    for end in ("\\Z", "$"):
        regex = regex.removesuffix(end)
    return regex


def _patterns(patterns=None, route: str = "", regex: str = "", namespace: str | None = None):
    """(key, route, full regex) of every leaf pattern; key is "namespace:name", or the route if unnamed."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        text, inner_regex = route + str(pattern.pattern), regex + _strip(pattern.pattern.regex.pattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from _patterns(pattern.url_patterns, text, inner_regex, inner)
        elif isinstance(pattern, URLPattern):
            key = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield key or text, text, inner_regex


ALL_PATTERNS = list(_patterns())


# --- Sample objects for URL parameters --------------------------------------------------------------------


@pytest.fixture
def world(db):
    roles_ensure()
    User = get_user_model()

    def user(name: str, role: str | None):
        account = User.objects.create(username=name, is_staff=role == ADMIN)
        account.set_unusable_password()  # no password hashing: the matrix signs in with force_login
        account.save()
        if role:
            account.groups.add(Group.objects.get(name=role))
        return account

    tag = TagFactory(name="Shirts", aliases=("Shirt",))
    products = [ProductFactory(external_id=f"SKU-{i}", title="Shirt") for i in (1, 2)]
    version = ModelVersionFactory(version="v1")
    SuggestionRefresh.objects.create(model_version=version)
    Setting.objects.create(key="matrix", value=True)
    victim = user("matrix-victim", OPERATOR)
    Token.objects.create(user=victim)
    # One row for each of django-axes' admin pages (login lockouts).
    seen = {
        "user_agent": "matrix",
        "ip_address": "192.0.2.1",
        "username": "matrix-victim",
        "path_info": "/login/",
    }
    AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**seen)
    AccessFailureLog.objects.create(**seen)
    return {
        "users": {OPERATOR: user("matrix-operator", OPERATOR), ADMIN: user("matrix-admin", ADMIN)},
        "victim": victim,
        "tag": tag,
        "product": products[0],
        "version": version,
        "training_job": TrainingJob.objects.create(trigger=TrainingTrigger.API, status="succeeded"),
        "import_job": ImportJob.objects.create(
            source_name="c.jsonl", file_path="/nonexistent", file_format="jsonl"
        ),
        "export_job": ExportJob.objects.create(file_format="jsonl"),
        "bulk_action": BulkAction.objects.create(
            kind=BulkKind.UNDO,
            tag=tag,
            status="succeeded",
            undoes=BulkAction.objects.create(kind=BulkKind.DECIDE, tag=tag, status="succeeded"),
        ),
    }


def url_for(route: str, regex: str, world: dict) -> str:
    """The pattern's URL with each parameter filled from the sample objects."""
    by_prefix = {
        "api/v1/tags/": world["tag"].pk,
        "tags/": world["tag"].pk,
        "api/v1/exports/": world["export_job"].pk,
        "api/v1/bulk-actions/": world["bulk_action"].pk,
        "bulk-actions/": world["bulk_action"].pk,
        "exports/": world["export_job"].pk,
        "api/v1/imports/": world["import_job"].pk,
        "api/v1/users/": world["victim"].pk,
        "api/v1/models/": world["version"].pk,
        "models/": world["version"].pk,
        "api/v1/training-jobs/": world["training_job"].pk,
        "products/": world["product"].pk,
        "review/": world["product"].pk,
    }
    values = {
        "external_id": world["product"].external_id,
        "id": world["victim"].pk,
        "content_type_id": ContentType.objects.get_for_model(Tag).pk,
        "app_label": "annotation",
        "url": "no-such-page/",
    }
    admin_model = re.match(r"admin/(\w+)/(\w+)/<path:object_id>/", route)
    if admin_model:  # an existing object of the page's model
        obj = apps.get_model(*admin_model.groups()).objects.order_by("pk").first()
        assert obj is not None, f"no sample {admin_model.groups()} object for {route!r}: create one in world"
        values["object_id"] = obj.pk
    elif route.startswith("admin/r/"):
        values["object_id"] = world["tag"].pk
    template, params = normalize(regex)[0]
    kwargs = {}
    for name in params:
        if name == "pk":
            prefix = next((p for p in sorted(by_prefix, key=len, reverse=True) if route.startswith(p)), None)
            assert prefix is not None, f"no sample value for <pk> in {route!r}: add its prefix to url_for"
            kwargs[name] = by_prefix[prefix]
        else:
            assert name in values, f"no sample value for <{name}> in {route!r}: add it to url_for"
            kwargs[name] = values[name]
    return "/" + template % kwargs


def client_for(role: str, world: dict) -> Client:
    client = Client()
    if role != ANON:
        client.force_login(world["users"][role])
    return client


def request(client: Client, method: str, url: str):
    extra = {"content_type": "application/json"} if method != "GET" else {}
    return getattr(client, method.lower())(url, **extra)


def expected(access: Access, route: str, role: str, method: str) -> int:
    level = access.read if method in SAFE else access.write
    if level == PUBLIC or (level != NOBODY and RANK[role] >= RANK[level]):
        status = access.ok.get(method, 405)
        return status[role] if isinstance(status, dict) else status
    if route.startswith("api/"):
        return 401 if role == ANON else 403
    return 302 if role == ANON else access.denied


def test_every_pattern_has_an_expectation():
    missing = [f"{key} ({route})" for key, route, _ in ALL_PATTERNS if expectation(key, route) is None]
    assert not missing, f"URL patterns without an entry in EXPECTATIONS: {missing}"
    for key, entry in EXPECTATIONS.items():
        for status in entry.ok.values():
            for code in status.values() if isinstance(status, dict) else [status]:
                assert code < 500, f"{key}: an expected status is never a server error"


@pytest.mark.parametrize(("key", "route", "regex"), ALL_PATTERNS, ids=[key for key, _, _ in ALL_PATTERNS])
def test_matrix(key, route, regex, world):
    entry = expectation(key, route)
    if entry is None:
        pytest.fail(f"{key} ({route}) has no entry in EXPECTATIONS")
    url = url_for(route, regex, world)
    # Refused page requests end at a login page: the app's, or the admin site's (directly or via /admin/).
    login = ("/admin/login/", "/admin/") if route.startswith("admin/") else ("/login/",)
    mismatches = []
    for role in ROLES:
        client = client_for(role, world)
        for method in METHODS:
            want = expected(entry, route, role, method)
            response = request(client, method, url)
            if response.status_code != want:
                mismatches.append(f"{role:9} {method:6} {url}: expected {want}, got {response.status_code}")
            level = entry.read if method in SAFE else entry.write
            refused = level not in (PUBLIC,) and (level == NOBODY or RANK[role] < RANK[level])
            if refused and want == 302 and not response["Location"].startswith(login):
                mismatches.append(f"{role:9} {method:6} {url}: refused, but sent to {response['Location']}")
    assert not mismatches, "\n".join(mismatches)
