"""A tiny dependency-free PNG line-plot writer (zlib + struct), for the loss curve.

plot_lines(path, series) draws each series (list of (x, y)) in its own colour on a white
canvas with axes, grid lines and numeric tick labels (a built-in 3x5 pixel font), plus
a legend of coloured swatches with their labels.
"""

from __future__ import annotations

import math
import os
import struct
import zlib

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]

# 3x5 bitmap font: each glyph is 5 rows of 3 bits
_FONT = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001010010",
    "8": "111101111101111",
    "9": "111101111001111",
    ".": "000000000000010",
    "-": "000000111000000",
    "e": "000111111100111",
    "k": "100101110101101",
    "a": "000111101111101",
    "b": "100111101101111",
    "i": "010000010010010",
    "l": "110010010010111",
    "n": "000110101101101",
    "r": "000111100100100",
    "s": "000111110011111",
    "t": "010111010010011",
    "v": "000101101101010",
    "p": "000111101111100",
    "o": "000111101101111",
    "c": "000111100100111",
    "d": "001111101101111",
    "m": "000111111101101",
    "g": "000111101111011",
    "u": "000101101101111",
    "h": "100111101101101",
    "w": "000101101111111",
    "y": "000101111001111",
    "x": "000101010101101",
    "f": "011010111010010",
    "z": "000111010100111",
    " ": "000000000000000",
    "/": "001001010100100",
    "(": "010100100100010",
    ")": "010001001001010",
}


class Canvas:
    def __init__(self, width: int, height: int):
        self.w, self.h = width, height
        self.px = bytearray(b"\xff" * (width * height * 3))

    def set(self, x: int, y: int, color) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i : i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color, thick: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:  # Bresenham
            for ox in range(thick):
                for oy in range(thick):
                    self.set(x0 + ox, y0 + oy, color)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def rect(self, x0: int, y0: int, x1: int, y1: int, color) -> None:
        for y in range(y0, y1):
            for x in range(x0, x1):
                self.set(x, y, color)

    def text(self, x: int, y: int, s: str, color=(0, 0, 0), scale: int = 2) -> None:
        for ch in s.lower():
            glyph = _FONT.get(ch, _FONT[" "])
            for r in range(5):
                for c in range(3):
                    if glyph[r * 3 + c] == "1":
                        self.rect(x + c * scale, y + r * scale, x + (c + 1) * scale, y + (r + 1) * scale, color)
            x += 4 * scale

    def png_bytes(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
        )


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 10000:
        return f"{v / 1000:.0f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3f}"


def plot_lines(
    path: str, series: dict, width: int = 720, height: int = 440, xlabel: str = "step", ylabel: str = "loss"
) -> None:
    """series: {label: [(x, y), ...]}. Non-finite points are dropped. Always writes a PNG."""
    clean = {
        k: [(float(x), float(y)) for x, y in pts if y is not None and math.isfinite(x) and math.isfinite(y)]
        for k, pts in series.items()
    }
    pts = [p for v in clean.values() for p in v]
    c = Canvas(width, height)
    left, right, top, bottom = 70, width - 20, 40, height - 50
    if pts:
        xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
        ymin, ymax = min(p[1] for p in pts), max(p[1] for p in pts)
    else:
        xmin, xmax, ymin, ymax = 0.0, 1.0, 0.0, 1.0
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    pad = (ymax - ymin) * 0.05
    ymin, ymax = ymin - pad, ymax + pad

    def sx(x):
        return int(round(left + (x - xmin) / (xmax - xmin) * (right - left)))

    def sy(y):
        return int(round(bottom - (y - ymin) / (ymax - ymin) * (bottom - top)))

    grid, axis = (225, 225, 225), (0, 0, 0)
    for i in range(6):
        yv = ymin + (ymax - ymin) * i / 5
        c.line(left, sy(yv), right, sy(yv), grid)
        c.text(4, sy(yv) - 5, _fmt(yv))
        xv = xmin + (xmax - xmin) * i / 5
        c.line(sx(xv), top, sx(xv), bottom, grid)
        label = _fmt(xv)
        c.text(sx(xv) - len(label) * 4, bottom + 8, label)
    c.line(left, top, left, bottom, axis)
    c.line(left, bottom, right, bottom, axis)
    c.text((left + right) // 2 - len(xlabel) * 4, height - 20, xlabel)
    c.text(4, 12, ylabel)
    lx = left + 60
    for i, (label, data) in enumerate(clean.items()):
        color = COLORS[i % len(COLORS)]
        c.rect(lx, 14, lx + 16, 24, color)
        c.text(lx + 22, 14, label)
        lx += 40 + 8 * len(label)
        if len(data) == 1:
            x, y = data[0]
            c.rect(sx(x) - 3, sy(y) - 3, sx(x) + 4, sy(y) + 4, color)
        for (x0, y0), (x1, y1) in zip(data, data[1:], strict=False):
            c.line(sx(x0), sy(y0), sx(x1), sy(y1), color, thick=2)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(c.png_bytes())
    os.replace(tmp, path)
