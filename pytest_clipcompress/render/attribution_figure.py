"""The picture and table of one explained image: original, compressed and the IG overlay.

Drawn on a bare :class:`matplotlib.figure.Figure` (never pyplot), so rendering is thread-safe; the
PNG carries no software tag, and class names are drawn literally (never as mathtext or TeX).
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from ..results.schema import AttributionItem
from .charts.drawing import literal_text

__all__ = ["render_attribution_png"]


def render_attribution_png(original: np.ndarray, compressed: np.ndarray, attributions: np.ndarray, item: AttributionItem) -> bytes:
    """Three panels (original, compressed, IG overlay) as PNG bytes.

    ``original`` and ``compressed`` are the images as the model saw them (resized and cropped like
    its input, float RGB in [0, 1], see ``ig.geometry.display_grid``), so that all panels align with
    the (3, H, W) attribution grid. The overlay sums IG over channels and paints positive
    attributions (pixel changes that raised the loss) red and negative ones blue, clipped at
    the 99th percentile of |IG|, over a faded grayscale of the compressed image.
    """
    heat = np.asarray(attributions, dtype=np.float64).sum(axis=0)
    scale = float(np.percentile(np.abs(heat), 99)) or 1.0
    signed = np.clip(heat / scale, -1.0, 1.0)
    cmap = colormaps["RdBu_r"]
    gray = compressed.mean(axis=2, keepdims=True)
    background = 0.55 + 0.4 * gray  # faded so the colours stay readable
    alpha = np.abs(signed)[..., None]
    overlay = (1 - alpha) * background + alpha * cmap((signed + 1) / 2)[..., :3]

    def verdict(prediction: int, name: str, prob_true: float) -> tuple[str, str]:
        # Red marks a wrong prediction; tiny probabilities keep their magnitude visible.
        shown = f"{prob_true:.2f}" if prob_true >= 0.01 else f"{prob_true:.1e}"
        colour = "black" if prediction == item["label"] else "firebrick"
        return f"pred {name}, P(true)={shown}", colour

    before, before_colour = verdict(item["pred_uncompressed"], item["pred_uncompressed_name"], item["prob_true_uncompressed"])
    after, after_colour = verdict(item["pred_compressed"], item["pred_compressed_name"], item["prob_true_compressed"])
    method = {"riemann_trapezoid": "trapezoid", "gausslegendre": "Gauss-Legendre"}.get(item["method"], item["method"])
    fig = Figure(figsize=(7.5, 2.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    ig_title = f"IG ({method}, {item['steps']} steps), red raises loss\n\u0394loss={item['delta_f']:+.3g}, \u03a3IG={item['sum_attributions']:+.3g}"
    panels = [
        (original, f"original\n{before}", before_colour),
        (compressed, f"{item['compression_id']}\n{after}", after_colour),
        (overlay, ig_title, "black"),
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
    fig.suptitle(f"#{item['index']}  true: {item['true_name']}", fontsize=9)
    literal_text(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
