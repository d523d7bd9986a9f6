"""Path converters of the /api/v1/ routes.

Products are addressed by the merchant's external id, and merchant SKUs contain "/": the id in
``products/<external_id>/`` may span several path segments. The review area adds action routes under
the same prefix (``products/<external_id>/review/``, ``…/release/``); the product id converter refuses
an id that would swallow one of those actions, so ``products/a/b/review/`` can only be the review
action on ``a/b`` whatever order the area route tables are included in.
"""

from __future__ import annotations

# Every action route under products/<external_id>/<action>/ (annotation/api/review/urls.py). A test walks
# the API routes and fails when a route under products/ ends in a suffix missing here.
PRODUCT_ACTIONS = ("review", "release")


class ProductExternalIdConverter:
    """Any external id, "/" included, except one that ends in ``/<action>`` for an action route.

    The route is ``products/<product_external_id:external_id>/``: at no character of the id may the rest
    of the path be ``/<action>/`` and its end. (The same regex as before this converter existed, so the
    OpenAPI schema shows the same parameter pattern.)
    """

    regex = r"(?:(?!/(?:{actions})/$).)+".format(actions="|".join(PRODUCT_ACTIONS))

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
