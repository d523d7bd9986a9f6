"""The dashboard: catalog progress, the team, the model, and labels worth a second look.

Figures come from SQL aggregates (annotation.selectors.dashboard), cached for a short TTL; charts are
drawn here as inline SVG (no JavaScript, no chart library), so the page is complete as served.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views import View

from annotation.selectors.auto_approval import auto_approval_state
from annotation.selectors.dashboard import (
    PER_TAG_SORT_KEYS,
    catalog_counts,
    dashboard_model_section,
    per_tag_quality,
    review_activity,
    suspicious_labels,
)
from annotation.selectors.models import model_version_active_id
from annotation.views.access import OperatorRequiredMixin

T = TypeVar("T")

CACHE_PREFIX = "dashboard:v1:"


def _cache_seconds() -> int:
    return int(getattr(settings, "DASHBOARD_CACHE_SECONDS", 60))


def cached(key: str, compute: Callable[[], T], *, seconds: int | None = None) -> T:
    """A dashboard section from the cache, computed at most once per TTL (figures a minute old serve)."""
    return cache.get_or_set(CACHE_PREFIX + key, compute, _cache_seconds() if seconds is None else seconds)


# --- inline SVG charts ------------------------------------------------------------------------------

WIDTH, HEIGHT = 500, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 46, 26, 14, 34
PALETTE = ("#2f6fec", "#e07a1f", "#1f8a4c", "#c23b3b")


@dataclass
class ChartSeries:
    name: str
    color: str
    points: str = ""  # "x,y x,y" for <polyline>
    dots: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Chart:
    """Geometry of one chart, in SVG user units; the template only draws it."""

    key: str
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    x_ticks: list[dict[str, Any]] = field(default_factory=list)
    y_ticks: list[dict[str, Any]] = field(default_factory=list)
    series: list[ChartSeries] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)
    x_label: str = ""
    y_label: str = ""
    empty: str = ""

    @property
    def plot_left(self) -> int:
        return MARGIN_LEFT

    @property
    def plot_right(self) -> int:
        return self.width - MARGIN_RIGHT

    @property
    def plot_top(self) -> int:
        return MARGIN_TOP

    @property
    def plot_bottom(self) -> int:
        return self.height - MARGIN_BOTTOM

    @property
    def frame(self) -> dict[str, str]:
        """Fixed positions as strings: the template prints them without number localisation (fast)."""
        return {
            "left": str(self.plot_left),
            "right": str(self.plot_right),
            "bottom": str(self.plot_bottom),
            "y_label_x": str(self.plot_left - 6),
            "x_label_y": str(self.plot_bottom + 16),
            "axis_title_y": str(self.height - 2),
            "width": str(self.width),
            "height": str(self.height),
        }


def _c(value: float) -> str:
    """An SVG coordinate: one decimal, as a string (no locale formatting in the template)."""
    return f"{value:.1f}"


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 × 10^k)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _x_scale(chart: Chart, lo: float, hi: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    width = chart.plot_right - chart.plot_left
    if hi == lo:
        return lambda _x: chart.plot_left + width / 2
    return lambda x: chart.plot_left + (x - lo) / span * width


def _y_scale(chart: Chart, top: float) -> Callable[[float], float]:
    height = chart.plot_bottom - chart.plot_top
    return lambda y: chart.plot_bottom - (y / top) * height


def _y_ticks(chart: Chart, top: float, as_percent: bool) -> list[dict[str, Any]]:
    y = _y_scale(chart, top)
    return [
        {"y": y(top * i / 4), "label": f"{top * i / 4:.0%}" if as_percent else _fmt(top * i / 4)}
        for i in range(5)
    ]


def line_chart(
    key: str,
    title: str,
    *,
    xs: Sequence[float],
    series: dict[str, Sequence[float | None]],
    x_labels: Sequence[str] | None = None,
    point_labels: Sequence[str] | None = None,
    percent: bool = True,
    x_label: str = "",
    y_label: str = "",
    empty: str = "No data yet.",
) -> Chart:
    """Lines over a shared x axis; None values leave a gap in that series' dots and line."""
    chart = Chart(key=key, title=title, x_label=x_label, y_label=y_label)
    values = [v for ys in series.values() for v in ys if v is not None]
    if not xs or not values:
        chart.empty = empty
        return chart
    top = 1.0 if percent else _nice_max(max(values))
    x = _x_scale(chart, min(xs), max(xs))
    y = _y_scale(chart, top)
    chart.y_ticks = _y_ticks(chart, top, percent)
    labels = list(x_labels) if x_labels is not None else [_fmt(v) for v in xs]
    step = max(1, len(xs) // 6)
    chart.x_ticks = [{"x": _c(x(xs[i])), "label": labels[i]} for i in range(0, len(xs), step)]
    for index, (name, ys) in enumerate(series.items()):
        line = ChartSeries(name=name, color=PALETTE[index % len(PALETTE)])
        coords = []
        for i, (xv, yv) in enumerate(zip(xs, ys)):
            if yv is None:
                continue
            coords.append(f"{_c(x(xv))},{_c(y(yv))}")
            tip = point_labels[i] if point_labels else labels[i]
            value = f"{yv:.3f}" if percent else _fmt(yv)
            line.dots.append({"x": _c(x(xv)), "y": _c(y(yv)), "title": f"{name} {value} — {tip}"})
        line.points = " ".join(coords)
        chart.series.append(line)
    return chart


def bar_chart(
    key: str,
    title: str,
    *,
    labels: Sequence[str],
    values: Sequence[float | None],
    percent: bool = False,
    tick_every: int | None = None,
    y_label: str = "",
    empty: str = "No data yet.",
) -> Chart:
    chart = Chart(key=key, title=title, y_label=y_label)
    present = [v for v in values if v is not None]
    if not labels or not present or (not percent and max(present) <= 0):
        chart.empty = empty
        return chart
    top = 1.0 if percent else _nice_max(max(present))
    y = _y_scale(chart, top)
    chart.y_ticks = _y_ticks(chart, top, percent)
    slot = (chart.plot_right - chart.plot_left) / len(labels)
    width = max(1.0, slot * 0.75)
    every = tick_every or max(1, len(labels) // 6)
    for i, (label, value) in enumerate(zip(labels, values)):
        left = chart.plot_left + i * slot + (slot - width) / 2
        if i % every == 0:
            chart.x_ticks.append({"x": _c(left + width / 2), "label": label})
        if value is None or (value == 0 and not percent):
            continue  # an empty day draws nothing (a 0% share still gets its, flat, bar)
        top_y = y(value)
        shown = f"{value:.0%}" if percent else _fmt(value)
        chart.bars.append(
            {
                "x": _c(left),
                "y": _c(top_y),
                "width": _c(width),
                "height": _c(chart.plot_bottom - top_y),
                "title": f"{label}: {shown}",
            }
        )
    return chart


# --- sections ---------------------------------------------------------------------------------------


def _product_link(product_id: int) -> str | None:
    """Where a person takes a second look at a product (the review area's product page)."""
    for name in ("product-detail", "product-review"):
        try:
            return reverse(name, args=[product_id])
        except NoReverseMatch:
            continue
    return None


def _charts(activity: dict[str, Any], model: dict[str, Any]) -> list[Chart]:
    per_day = activity["per_day"]
    reviews = bar_chart(
        "reviews-per-day",
        f"Reviews per day (last {activity['days']} days)",
        labels=[row["day"].strftime("%b %d") for row in per_day],
        values=[row["submits"] for row in per_day],
        tick_every=7,
        y_label="reviews",
        empty="No reviews in this period.",
    )
    timeline = model["timeline"]
    versions = line_chart(
        "model-versions",
        "Validation quality per model version",
        xs=list(range(len(timeline))),
        series={
            "micro-F1": [row["micro_f1"] for row in timeline],
            "P@1": [row["p_at_1"] for row in timeline],
        },
        x_labels=[row["created_at"].strftime("%b %d") for row in timeline],
        point_labels=[f"{row['version']} ({row['created_at']:%Y-%m-%d %H:%M})" for row in timeline],
        empty="No trained model yet.",
    )
    curve_rows = model["learning_curve"]
    curve = line_chart(
        "learning-curve",
        "Learning curve: micro-F1 against approved labels",
        xs=[row["train_size"] for row in curve_rows],
        series={"micro-F1": [row["micro_f1"] for row in curve_rows]},
        point_labels=[f"{row['version']}, {row['train_size']:,} products" for row in curve_rows],
        x_label="products with approved tags in training",
        empty="Needs a trained model with validation metrics.",
    )
    per_version = activity["versions"]
    unchanged = bar_chart(
        "accepted-unchanged",
        "Cards accepted unchanged, per model version",
        labels=[row["version"] for row in per_version],
        values=[row["unchanged_share"] for row in per_version],
        percent=True,
        tick_every=1 if len(per_version) <= 6 else None,
        empty="No reviewed suggestions yet.",
    )
    return [reviews, versions, curve, unchanged]


PER_TAG_PAGE_ROWS = 50
PER_TAG_MAX_ROWS = 2000


def _per_tag_params(request: HttpRequest) -> tuple[str, bool, int]:
    sort = request.GET.get("sort", "f1")
    if sort not in PER_TAG_SORT_KEYS:
        sort = "f1"
    try:
        rows = int(request.GET.get("rows", PER_TAG_PAGE_ROWS))
    except ValueError:
        rows = PER_TAG_PAGE_ROWS
    return sort, request.GET.get("dir", "asc") == "desc", min(max(rows, 1), PER_TAG_MAX_ROWS)


def _per_tag_context(request: HttpRequest) -> dict[str, Any]:
    sort, descending, rows = _per_tag_params(request)
    active_id = model_version_active_id()
    # A version's metrics never change once it is ready: its table is cached for an hour, by version.
    table = cached(
        f"per-tag:{active_id}:{sort}:{int(descending)}:{rows}",
        lambda: per_tag_quality(sort=sort, descending=descending, limit=rows),
        seconds=3600 if active_id is not None else None,
    )
    # Figures as strings: a long table renders without the template's per-number localisation.
    display = [
        {
            "tag": row["tag"],
            "precision": f"{row['precision']:.3f}",
            "recall": f"{row['recall']:.3f}",
            "f1": f"{row['f1']:.3f}",
            "support": str(row["support"]),
        }
        for row in table["rows"]
    ]
    columns = []
    for key, label in (
        ("tag", "Tag"),
        ("precision", "Precision"),
        ("recall", "Recall"),
        ("f1", "F1"),
        ("support", "Support"),
    ):
        # Clicking the sorted column flips it; another column starts with its worst (or A–Z) first.
        flip = (
            "asc"
            if (key == sort and descending) or (key != sort and key in {"tag", "precision", "recall", "f1"})
            else "desc"
        )
        columns.append(
            {"key": key, "label": label, "dir": flip, "sorted": key == sort, "descending": descending}
        )
    more = min(table["total"], PER_TAG_MAX_ROWS) if table["total"] > len(display) else None
    return {
        "per_tag": table,
        "per_tag_rows": display,
        "per_tag_columns": columns,
        "per_tag_query": {"sort": sort, "dir": "desc" if descending else "asc", "rows": rows},
        "per_tag_more": more,
    }


class DashboardView(OperatorRequiredMixin, View):
    template_name = "annotation/dashboard.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        catalog = cached("catalog", catalog_counts)
        activity = cached("activity", review_activity)
        model = cached("model", dashboard_model_section)
        context = {
            "catalog": catalog,
            "activity": activity,
            "model": model,
            "charts": _charts(activity, model),
            "generated_at": dt.datetime.now(dt.UTC),
            "cache_seconds": _cache_seconds(),
            # Not cached: a stop must show at once (a handful of small queries).
            "auto": auto_approval_state(),
            **_per_tag_context(request),
        }
        return render(request, self.template_name, context)


class DashboardPerTagView(OperatorRequiredMixin, View):
    """The per-tag table alone, re-sorted (htmx swaps it in place; without JS the full page sorts)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "annotation/dashboard_per_tag.html", _per_tag_context(request))


class DashboardSuspiciousView(OperatorRequiredMixin, View):
    """Suspicious labels, loaded after the page (its scan is the slowest part of the dashboard)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        active_id = model_version_active_id()
        # The slowest scan, and its answer changes with a new model version or new labels: kept longer
        # (the key names the active version, so an activation shows the new version's doubts at once).
        result = cached(f"suspicious:{active_id}", suspicious_labels, seconds=min(5 * _cache_seconds(), 300))
        for row in result["rows"]:
            row["link"] = _product_link(row["product_id"])
        return render(request, "annotation/dashboard_suspicious.html", {"suspicious": result})
