"""HTML catalog pages: the product list (filters, keyset pages) and the product page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views import View

from annotation.roles import is_admin
from annotation.selectors.catalog import (
    CursorError,
    ProductListFilter,
    approved_tag_names_by_product,
    product_list,
    product_list_count,
    product_page_queryset,
)
from annotation.selectors.review import claim_is_live, product_history, product_last_submit, review_card
from annotation.views.access import OperatorRequiredMixin
from annotation.views.catalog.forms import ProductFilterForm


class ProductListView(OperatorRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        form = ProductFilterForm(request.GET)
        valid = form.is_valid()
        filters = form.list_filter() if valid else ProductListFilter()
        cursor = form.cleaned_data.get("cursor", "") if valid else ""
        error = (
            ""
            if valid
            else "Some filters were invalid: "
            + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        )
        try:
            page = product_list(filters=filters, cursor=cursor)
        except CursorError as exc:
            error = str(exc)
            page = product_list(filters=filters)
        count = None if page.unknown_tag else product_list_count(filters=filters)
        tags_by_product = approved_tag_names_by_product([p.id for p in page.rows])
        rows = [
            {"product": p, "tags": tags_by_product.get(p.id, []), "claimed": claim_is_live(p)}
            for p in page.rows
        ]
        query = request.GET.copy()
        query.pop("cursor", None)
        next_query = None
        if page.next_cursor:
            next_query = query.copy()
            next_query["cursor"] = page.next_cursor
        return render(
            request,
            "annotation/product_list.html",
            {
                "form": form,
                "filters": filters,
                "rows": rows,
                "error": error,
                "unknown_tag": page.unknown_tag,
                "searched": page.searched,
                "next_query": next_query.urlencode() if next_query else "",
                "first_query": query.urlencode(),
                "is_later_page": bool(cursor),
                # "about 240,000" above 100,000 on PostgreSQL (the planner's estimate), else exact.
                "count": count,
                "count_text": None if count is None else f"{count.value:,}",
                "show_score": filters.search is not None and filters.search.suggested_tag_id is not None,
            },
        )


class ProductDetailView(OperatorRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        product = get_object_or_404(product_page_queryset(), pk=pk)
        last_submit = product_last_submit(product=product)
        can_undo = last_submit is not None and (
            last_submit.user_id == request.user.pk or is_admin(request.user)
        )
        return render(
            request,
            "annotation/product_detail.html",
            {
                "card": review_card(product=product),
                "product": product,
                "claimed": claim_is_live(product),
                "history": product_history(product=product),
                "last_submit": last_submit if can_undo else None,
            },
        )
