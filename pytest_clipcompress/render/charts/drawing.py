"""What every chart shares: figure sizes, the accuracy and bits-per-pixel axes, the legend outside
the plot, literal text, point labels that never overlap, and the PNG bytes (no software tag)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...results.schema import EvaluationRecord
from ..format import codec_name, param_label, params

DPI = 100
RATE_SIZE = (9.0, 4.2)
SETTING_SIZE = (9.0, 3.6)
_LABEL_OFFSETS = ((7, 3, "left", "bottom"), (7, -3, "left", "top"), (-7, 3, "right", "bottom"), (-7, -3, "right", "top"))


@dataclass
class Marks:
    """What a chart drew, for its axes' ranges and for placing point labels where nothing else is."""

    x_values: list[float] = field(default_factory=list)
    y_values: list[float] = field(default_factory=list)
    labels: list[tuple[float, float, str, str]] = field(default_factory=list)  # x, y, text, colour
    occupied: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y and the error bar's ends


def new_axes(size: tuple[float, float]) -> tuple[Any, Any]:
    """A bare Agg figure (never pyplot: thread-safe, no display) and its one axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def sizes(rows: Sequence[EvaluationRecord]) -> str:
    values = sorted({r.get("n") for r in rows}, key=lambda n: (not isinstance(n, int), str(n) if not isinstance(n, int) else n))
    return "n=" + "/".join(str(n) for n in values)


def series_label(codec_key: str, row: EvaluationRecord, others: Sequence[str], varying: Sequence[str], with_codec: bool) -> str:
    """A line's legend text: the codec's other settings (e.g. 4:4:4) and run settings that vary."""
    given = params(row)
    parts = [param_label(codec_key, name, given.get(name)) for name in others]
    parts += [f"{name}={row.get(name)}" for name in varying]
    return ", ".join(([codec_name(codec_key)] if with_codec else []) + parts) or codec_name(codec_key)


def varying_fields(rows: Sequence[EvaluationRecord]) -> list[str]:
    """Run settings that differ between ``rows`` (subset size, seed, prompts): each is a line of its own."""
    return [name for name in ("n", "seed", "templates") if len({json.dumps(r.get(name), sort_keys=True, default=str) for r in rows}) > 1]


def accuracy_axis(ax: Any, y_values: Sequence[float]) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylabel("zero-shot accuracy (%)", fontsize=9)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if y_values:
        bottom, top = min(y_values), max(y_values)
        pad = max(0.02, (top - bottom) * 0.1)
        ax.set_ylim(max(-0.02, bottom - pad), min(1.04, top + pad))


def rate_axis(ax: Any, x_values: Sequence[float]) -> None:
    """Bits per pixel on a log axis with at least three labelled ticks."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (bpp, log scale; fewer bits \u2190)", fontsize=9)
    if x_values:
        lo, hi = min(x_values) / 1.3, max(x_values) * 1.3
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(_log_ticks(lo, hi)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def finish(fig: Any, ax: Any, title: str, marks: Marks, legend_rank: Callable[[str], Any] | None = None) -> bytes:
    """Grid, title, the legend outside the plot (ordered by ``legend_rank`` of the entries' text, else as
    matplotlib lists them), literal text and point labels; the PNG bytes."""
    ax.grid(True, which="major", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=10, loc="left")
    handles, names = ax.get_legend_handles_labels()
    if legend_rank is not None and handles:
        ranked = sorted(zip(handles, names, strict=True), key=lambda entry: legend_rank(entry[1]))
        handles, names = [entry[0] for entry in ranked], [entry[1] for entry in ranked]
    if handles:
        ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7.5, frameon=False)
    literal_text(fig)
    _place_labels(fig, ax, marks.labels, marks.occupied)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks inside [low, high]; finer steps when that gives fewer than three."""
    for steps in ((1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0), tuple(float(m) for m in range(1, 10))):
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1) for m in steps]
        inside = sorted(float(f"{t:.6g}") for t in ticks if low <= t <= high)
        if len(inside) >= 3:
            return inside
    return [float(f"{v:.2g}") for v in (low * 1.1, math.sqrt(low * high), high / 1.1)]


def literal_text(fig: Any) -> None:
    """Draw every text as written: user text (model, dataset, class names) is never mathtext or TeX."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_usetex(False)
        text.set_parse_math(False)


def _place_labels(fig: Any, ax: Any, labels: Sequence[tuple[float, float, str, str]], occupied: Sequence[tuple[float, float, float, float]]) -> None:
    """Annotate points only where the label overlaps no other label, point or error bar (tried at four offsets), else not at all.

    The layout is fixed first (one draw, then no layout engine) so the boxes measured here are the
    ones saved.
    """
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    to_display = ax.transData.transform
    taken = []
    from matplotlib.transforms import Bbox

    for x, y, bar_low, bar_high in occupied:
        px, py = to_display((x, y))
        taken.append(Bbox.from_extents(px - 7, py - 7, px + 7, py + 7))  # a marker with its ring
        _, low = to_display((x, bar_low))
        _, high = to_display((x, bar_high))
        taken.append(Bbox.from_extents(px - 5, min(low, high) - 1, px + 5, max(low, high) + 1))  # its error bar and caps
    for x, y, text, colour in labels:
        for dx, dy, ha, va in _LABEL_OFFSETS:
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7, color=colour, zorder=6)
            note.set_parse_math(False)
            note.set_usetex(False)
            box = note.get_window_extent(renderer)
            inside = area.containsx(box.x0) and area.containsx(box.x1) and area.containsy(box.y0) and area.containsy(box.y1)
            if inside and not any(box.overlaps(t) for t in taken):
                taken.append(box.padded(2))
                break
            note.remove()
