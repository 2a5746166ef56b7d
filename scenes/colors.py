"""Colours: the ``#rrggbb`` sRGB strings of the API into glTF's linear factors."""

from __future__ import annotations


def linear_rgb(color: str) -> tuple[float, float, float]:
    """``#rrggbb`` (sRGB) as linear RGB in 0..1 (glTF 2.0 §3.9.2: colour factors are linear)."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return (round(r, 4), round(g, 4), round(b, 4))
