"""Path converters of the /api/v1/ routes.

Products are addressed by the merchant's external id, and merchant SKUs contain "/": the id in
``products/<external_id>/`` may span several path segments. The review area adds action routes under
the same prefix (``products/<external_id>/review/``, ``…/release/``); the product id converter refuses
an id that would swallow one of those actions, so ``products/a/b/review/`` can only be the review
action on ``a/b`` whatever order the area route tables are included in.

No id with a control character (C0, DEL, C1: NUL, newline, tab, ...) is routed: PostgreSQL cannot even
compare a NUL with a stored id (the lookup raised ``DataError``, a 500), the import refuses such ids, and
Django's route regex never matched a newline anyway. Both converters below apply the one rule, so such a
path is an unrouted path under /api/: a JSON 404 in the API's error shape (``annotation.api.errors``).
"""

from __future__ import annotations

# Every action route under products/<external_id>/<action>/ (annotation/api/review/urls.py). A test walks
# the API routes and fails when a route under products/ ends in a suffix missing here.
PRODUCT_ACTIONS = ("review", "release")
# One character of an external id in a path: anything but a control character (Unicode Cc).
_ID_CHAR = r"[^\x00-\x1f\x7f-\x9f]"


class ProductExternalIdConverter:
    """Any external id without control characters, "/" included, except one that ends in ``/<action>``
    for an action route.

    The route is ``products/<product_external_id:external_id>/``: at no character of the id may the rest
    of the path be ``/<action>/`` and its end. The OpenAPI schema shows this regex as the parameter's
    pattern.
    """

    regex = r"(?:(?!/(?:{actions})/$){char})+".format(actions="|".join(PRODUCT_ACTIONS), char=_ID_CHAR)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class ProductActionExternalIdConverter:
    """The external id in an action route (``products/<product_action_external_id:external_id>/review/``):
    any id without control characters, "/" included (Django's ``path`` converter minus the control
    characters)."""

    regex = f"{_ID_CHAR}+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
