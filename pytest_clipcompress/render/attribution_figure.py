"""The picture and table of one explained image: original, compressed and the IG overlay.

Drawn on a bare :class:`matplotlib.figure.Figure` (never pyplot), so rendering is thread-safe; the
PNG carries no software tag, and class names are drawn literally (never as mathtext or TeX).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from PIL import Image

from ..attribution import ImageAttribution, _to_numpy
from ..geometry import InputGeometry, display_grid
from .charts import _literal_text
from .html import ig_table_html

__all__ = ["attribution_table_html", "render_attribution_png"]


def _class_name(class_names: Sequence[str], index: int) -> str:
    return class_names[index] if 0 <= index < len(class_names) else str(index)


def render_attribution_png(
    original: Image.Image,
    compressed: Image.Image,
    attributions: np.ndarray,
    *,
    class_names: Sequence[str],
    info: ImageAttribution,
    compression_label: str,
    geometry: InputGeometry | None = None,
) -> bytes:
    """Three panels (original, compressed, IG overlay) as PNG bytes.

    The images are shown resized and cropped like the model input (``geometry``, measured from
    the model's preprocessing; default: shortest-side resize and centre crop) so that all panels
    align with the (3, H, W) attribution grid. The overlay sums IG over channels and paints positive
    attributions (pixel changes that raised the loss) red and negative ones blue, clipped at
    the 99th percentile of |IG|, over a faded grayscale of the compressed image.
    """
    heat = _to_numpy(attributions).sum(axis=0)
    size = geometry or heat.shape[0]
    scale = float(np.percentile(np.abs(heat), 99)) or 1.0
    signed = np.clip(heat / scale, -1.0, 1.0)
    cmap = colormaps["RdBu_r"]
    gray = display_grid(compressed, size).mean(axis=2, keepdims=True)
    background = 0.55 + 0.4 * gray  # faded so the colours stay readable
    alpha = np.abs(signed)[..., None]
    overlay = (1 - alpha) * background + alpha * cmap((signed + 1) / 2)[..., :3]

    def verdict(prediction: int, prob_true: float) -> tuple[str, str]:
        # Red marks a wrong prediction; tiny probabilities keep their magnitude visible.
        shown = f"{prob_true:.2f}" if prob_true >= 0.01 else f"{prob_true:.1e}"
        colour = "black" if prediction == info.label else "firebrick"
        return f"pred {_class_name(class_names, prediction)}, P(true)={shown}", colour

    before, before_colour = verdict(info.pred_uncompressed, info.prob_true_uncompressed)
    after, after_colour = verdict(info.pred_compressed, info.prob_true_compressed)
    method = {"riemann_trapezoid": "trapezoid", "gausslegendre": "Gauss-Legendre"}.get(info.method, info.method)
    fig = Figure(figsize=(7.5, 2.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [
        (display_grid(original, size), f"original\n{before}", before_colour),
        (display_grid(compressed, size), f"{compression_label}\n{after}", after_colour),
        (overlay, f"IG ({method}, {info.steps} steps), red raises loss\n\u0394loss={info.delta_f:+.3g}, \u03a3IG={info.sum_attributions:+.3g}", "black"),
    ]
    for ax, (picture, title, colour) in zip(axes, panels, strict=True):
        ax.imshow(np.clip(picture, 0.0, 1.0), interpolation="nearest")
        ax.set_title(title, fontsize=7.5, color=colour)
        ax.set_axis_off()
    colorbar = fig.colorbar(ScalarMappable(Normalize(-scale, scale), cmap), ax=axes[2], fraction=0.046, pad=0.02)
    colorbar.ax.tick_params(labelsize=6)
    if isinstance(colorbar.formatter, ScalarFormatter):  # always, for a linear Normalize
        colorbar.formatter.set_powerlimits((-2, 2))
    colorbar.ax.yaxis.get_offset_text().set_fontsize(6)
    fig.suptitle(f"#{info.index}  true: {_class_name(class_names, info.label)}", fontsize=9)
    _literal_text(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def attribution_table_html(items: Sequence[ImageAttribution], class_names: Sequence[str]) -> str:
    """A compact HTML table with one row per explained image; all text is escaped."""
    return ig_table_html(
        {
            **item.to_dict(),
            "true_name": _class_name(class_names, item.label),
            "pred_uncompressed_name": _class_name(class_names, item.pred_uncompressed),
            "pred_compressed_name": _class_name(class_names, item.pred_compressed),
        }
        for item in items
    )
