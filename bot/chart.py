"""A bar chart of layer sizes with the build step that made each layer, as a PNG.

People see which step made the image big faster from bars than from a table. Pillow draws it
with its bundled font; text goes through the renderer's ``untrusted`` first (build steps come
from whoever built the image).
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from layerpeek.bot.render import untrusted
from layerpeek.core.models import ImageReport
from layerpeek.core.text import human_size

WIDTH = 900
ROW = 26
TOP = 40
LABEL_WIDTH = 520
BAR_LEFT = LABEL_WIDTH + 20
BAR_WIDTH = WIDTH - BAR_LEFT - 110
MAX_BARS = 60  # a taller picture is unreadable in a chat; the rest are summed in one bar
BAR = (88, 101, 242)  # Discord's blurple
TEXT = (220, 221, 222)
BACKGROUND = (47, 49, 54)


def _bars(report: ImageReport) -> list[tuple[str, int]]:
    bars = [
        (f"{layer.index}: {layer.created_by or '(no build step recorded)'}", layer.size)
        for layer in report.layers
    ]
    if len(bars) > MAX_BARS:
        rest = bars[MAX_BARS - 1 :]
        bars = [*bars[: MAX_BARS - 1], (f"{len(rest)} more layers", sum(s for _, s in rest))]
    return bars


def layer_chart(report: ImageReport) -> bytes:
    """The PNG bytes of the chart (CPU work: call it in a worker thread)."""
    bars = _bars(report)
    font = ImageFont.load_default(size=14)
    image = Image.new("RGB", (WIDTH, TOP + ROW * max(1, len(bars)) + 10), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title = f"{report.reference} ({report.platform}): layer sizes"
    draw.text((10, 10), untrusted(title, 110, "plain"), fill=TEXT, font=font)
    largest = max((size for _, size in bars), default=0) or 1
    for row, (label, size) in enumerate(bars):
        y = TOP + row * ROW
        draw.text((10, y + 4), untrusted(label, 64, "plain"), fill=TEXT, font=font)
        length = max(2, round(BAR_WIDTH * size / largest))
        draw.rectangle((BAR_LEFT, y + 3, BAR_LEFT + length, y + ROW - 5), fill=BAR)
        draw.text((BAR_LEFT + length + 6, y + 4), human_size(size), fill=TEXT, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
