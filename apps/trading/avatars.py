"""Deterministic identicons: a 5x5 grid mirrored left to right, drawn from a hash of an id.

The SVG is built only from the hash (never from the id itself), so any id is safe to render.
"""

from __future__ import annotations

import colorsys
import hashlib

GRID = 5
CELL = 10  # user units per cell; the image scales (viewBox)
PADDING = 5
BACKGROUND = "#f0f0f0"
MAX_ID_LENGTH = 64


def identicon_cells(identifier: str) -> list[tuple[int, int]]:
    """(column, row) of the filled cells: the left three columns come from the hash's bits and
    the right two mirror the first two."""
    digest = hashlib.sha256(identifier.encode()).digest()
    bits = int.from_bytes(digest[:4], "big")
    filled = []
    for row in range(GRID):
        for column in range((GRID + 1) // 2):
            if bits >> (row * 3 + column) & 1:
                filled.append((column, row))
                mirror = GRID - 1 - column
                if mirror != column:
                    filled.append((mirror, row))
    return sorted(filled)


def identicon_color(identifier: str) -> str:
    """A mid-saturation colour from the hash: hue anywhere, lightness readable on light grey."""
    digest = hashlib.sha256(identifier.encode()).digest()
    hue = int.from_bytes(digest[4:6], "big") / 65536
    saturation = 0.45 + digest[6] / 255 * 0.2
    lightness = 0.40 + digest[7] / 255 * 0.15
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def identicon_svg(identifier: str) -> str:
    size = GRID * CELL + 2 * PADDING
    color = identicon_color(identifier)
    rects = "".join(
        f'<rect x="{PADDING + column * CELL}" y="{PADDING + row * CELL}" width="{CELL}" height="{CELL}"/>'
        for column, row in identicon_cells(identifier)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" '
        f'height="{size}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="{BACKGROUND}"/>'
        f'<g fill="{color}">{rects}</g></svg>'
    )
