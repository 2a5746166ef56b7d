"""Signage: booth fascia signs and booth-number labels, rendered as textures.

An exhibitor's name (Latin, Cyrillic or CJK) is drawn centred on a solid background, in the
largest size whose ink fits the box inside the padding; a name too long even at the style's
minimum size is cut and ends with an ellipsis. A second, smaller line (a tagline) is optional.
:func:`layout_sign` says what will be drawn where; :func:`render_sign` draws it;
:func:`sign_texture` and :func:`label_texture` encode the result for a glTF material.

Decisions:

- Untrusted text is cleaned first (:func:`clean_text`): NFC, no control, format (bidi overrides
  U+202A-U+202E, U+2066-U+2069, zero-width characters), surrogate, private-use or unassigned
  code points, whitespace collapsed, length capped. Characters the font still lacks are dropped
  before drawing (and logged): a sign never shows a tofu box. Callers who want to tell the
  exhibitor check :func:`scenes.fonts.missing_glyphs` on input.
- Font: Noto Sans CJK (``scenes.fonts``), bold for the name by default, regular for the tagline;
  the face (JP/KR/SC/TC/HK) follows the script or the ``lang`` hint, and DejaVu Sans takes over
  for Latin and Cyrillic letters Noto Sans CJK lacks (Polish, Czech, Ukrainian...). Both lines
  use the face chosen for the name and tagline together, so they match.
- Pillow's BASIC layout, not RAQM: Latin and Cyrillic (NFC-composed), Han, kana and precomposed
  Hangul need no shaping, and BASIC is in every Pillow build while RAQM depends on the system's
  libfribidi. So the same text gives the same pixels on a developer machine and in the image.
- Fit: the size is the largest whose ink box fits the padded box (binary search, whole pixels),
  at most the box height (so a name of dots or dashes does not become a giant).
- Texture encoding: lossless WebP by default. Flat text on a solid background compresses better
  losslessly than lossy at quality 80, which would also smear coloured edges (4:2:0 chroma
  subsampling). Measured on the fascia default with the test names (lossless WebP / PNG / lossy
  WebP q80): Latin 5.8 / 16.5 / 6.9 KB, Cyrillic 6.7 / 16.9 / 7.2 KB, Chinese 7.9 / 24.9 / 9.8 KB.
  PNG remains for viewers without ``EXT_texture_webp``.
- Ellipsis: U+2026 in East Asian text, where Noto Sans CJK's full-width form (dots centred
  mid-height) is the convention; three full stops in Latin and Cyrillic text, whose ellipsis sits
  on the baseline (the font maps U+2026 to the full-width form only).
- Deterministic: no clock, no randomness, integer positions, fixed encoder parameters.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from pipeline.model import Texture
from pipeline.steps.textures import encode
from scenes.errors import StyleError
from scenes.fonts import Face, FontFiles, choose_face, coverage, find_fonts

logger = logging.getLogger(__name__)

NAME_MAX_CHARS = 80
TAGLINE_MAX_CHARS = 120
LABEL_MAX_CHARS = 12
ELLIPSIS = "\u2026"
# WebGL 2 guarantees MAX_TEXTURE_SIZE >= 2048 and every current GPU has >= 4096; signs need less.
MAX_SIDE = 4096

TextureFormat = Literal["webp", "png"]
_ENCODING = {"webp": ("WEBP", "image/webp"), "png": ("PNG", "image/png")}
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
# Unicode general categories removed from untrusted text: Cc control (C0, DEL, C1), Cf format
# (the bidi embeddings and overrides U+202A-U+202E and isolates U+2066-U+2069 are Cf, as are
# zero-width characters and tags), Cs lone surrogates, Co private use, Cn unassigned.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


@dataclass(frozen=True, slots=True)
class SignStyle:
    """How a sign looks. The defaults make a booth fascia.

    Attributes:
        width: Image width in pixels (1024).
        height: Image height in pixels (160): a 6.4:1 strip, like a fascia board.
        background: Background colour, ``"#rrggbb"`` (a dark slate, ``"#1f2937"``).
        foreground: Text colour, ``"#rrggbb"`` (white).
        padding: Empty margin on every side, in pixels (16); no ink falls inside it.
        bold: Draw the name in the bold weight (True), when it is installed.
        min_size: Smallest font size in pixels (24) before a long name is cut with "…".
        tagline_scale: Size of the optional second line relative to the name's share of the
            height (0.45).
        max_chars: Longest name kept, in code points (80); longer ones are cut with "…".
    """

    width: int = 1024
    height: int = 160
    background: str = "#1f2937"
    foreground: str = "#ffffff"
    padding: int = 16
    bold: bool = True
    min_size: int = 24
    tagline_scale: float = 0.45
    max_chars: int = NAME_MAX_CHARS

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            side = getattr(self, name)
            if not 1 <= side <= MAX_SIDE:
                raise StyleError(f"{name} must be 1 to {MAX_SIDE} pixels, not {side}")
        if self.padding < 0 or 2 * self.padding >= min(self.width, self.height):
            raise StyleError(f"padding {self.padding} leaves no room in {self.width}x{self.height}")
        for name in ("background", "foreground"):
            if not _HEX.fullmatch(getattr(self, name)):
                raise StyleError(f"{name} must be a colour like '#1a2b3c'")
        if self.min_size < 1 or self.max_chars < 1:
            raise StyleError("min_size and max_chars must be at least 1")
        if not 0.0 < self.tagline_scale <= 1.0:
            raise StyleError("tagline_scale must be in (0, 1]")


FASCIA_STYLE = SignStyle()
LABEL_STYLE = SignStyle(width=256, height=256, padding=32, max_chars=LABEL_MAX_CHARS)


@dataclass(frozen=True, slots=True)
class SignLine:
    """One line of a sign as laid out: what is drawn, how big, and where.

    Attributes:
        text: The text drawn: cleaned, without characters the face lacks, cut with an ellipsis
            when too long.
        size: Font size in pixels.
        face: The font face.
        origin: The left end of the baseline, in image pixels.
        ink: The ink box in image pixels (left, top, right, bottom), as FreeType measures it.
    """

    text: str
    size: int
    face: Face
    origin: tuple[int, int]
    ink: tuple[int, int, int, int]
    font: ImageFont.FreeTypeFont = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class _Line:
    """A fitted line before placement; ``box`` is its ink box relative to its origin."""

    text: str
    face: Face
    font: ImageFont.FreeTypeFont
    box: tuple[int, int, int, int]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def clean_text(text: str, max_chars: int = NAME_MAX_CHARS) -> str:
    """Make untrusted text safe to draw.

    Args:
        text: Any string, e.g. an exhibitor's name as typed.
        max_chars: Longest result, in code points; longer text is cut and ends with "…".

    Returns:
        The text in NFC with control, format, surrogate, private-use and unassigned code points
        removed (bidi overrides and isolates included), every run of whitespace turned into one
        space, and no space at either end.
    """
    # Whitespace (tabs and newlines are controls) becomes a space before controls are removed,
    # so "Highland\nHoney" stays two words.
    spaced = "".join(" " if c.isspace() else c for c in text)
    kept = "".join(c for c in spaced if not _removed(c))
    # NFC composes base + combining mark (Cyrillic и + U+0306 -> й), which BASIC layout needs.
    collapsed = " ".join(unicodedata.normalize("NFC", kept).split())
    if len(collapsed) <= max_chars:
        return collapsed
    return collapsed[: max_chars - 1].rstrip() + ELLIPSIS


def layout_sign(
    text: str,
    style: SignStyle = FASCIA_STYLE,
    *,
    tagline: str | None = None,
    lang: str | None = None,
    fonts: FontFiles | None = None,
) -> tuple[SignLine, ...]:
    """Lay a sign out: clean the text, choose the faces, fit the sizes, centre the lines.

    Args:
        text: The exhibitor's name, untrusted (cleaned with :func:`clean_text`).
        style: Size, colours, padding and weights.
        tagline: An optional second line in a smaller, regular-weight size.
        lang: A BCP 47 language hint for CJK glyph forms ("ja", "ko", "zh-TW"...).
        fonts: The font files; found with :func:`scenes.fonts.find_fonts` when None.

    Returns:
        The lines to draw, top to bottom; empty when nothing drawable is left.

    Raises:
        FontError: The fonts are missing (``font_missing``) or unreadable (``font_invalid``).
    """
    fonts = fonts or find_fonts()
    name = clean_text(text, style.max_chars)
    second = clean_text(tagline or "", TAGLINE_MAX_CHARS)
    face_name = choose_face(name + second, lang=lang, bold=style.bold, fonts=fonts)
    face_tag = choose_face(name + second, lang=lang, bold=False, fonts=fonts)
    name, second = _drawable(name, face_name), _drawable(second, face_tag)
    return _place(_fit_lines(name, second, face_name, face_tag, style), style)


def render_sign(
    text: str,
    style: SignStyle = FASCIA_STYLE,
    *,
    tagline: str | None = None,
    lang: str | None = None,
    fonts: FontFiles | None = None,
) -> Image.Image:
    """Draw a sign: ``text`` centred on the style's background, auto-fitted to the box.

    Args:
        text: The exhibitor's name, untrusted (cleaned with :func:`clean_text`).
        style: Size, colours, padding and weights.
        tagline: An optional second line in a smaller, regular-weight size.
        lang: A BCP 47 language hint for CJK glyph forms ("ja", "ko", "zh-TW"...).
        fonts: The font files; found with :func:`scenes.fonts.find_fonts` when None.

    Returns:
        An RGB image of exactly ``style.width`` x ``style.height`` pixels.

    Raises:
        FontError: The fonts are missing (``font_missing``) or unreadable (``font_invalid``).
    """
    lines = layout_sign(text, style, tagline=tagline, lang=lang, fonts=fonts)
    image = Image.new("RGB", (style.width, style.height), style.background)
    draw = ImageDraw.Draw(image)
    for line in lines:
        draw.text(line.origin, line.text, fill=style.foreground, font=line.font, anchor="ls")
    return image


def sign_texture(
    text: str,
    style: SignStyle = FASCIA_STYLE,
    *,
    fmt: TextureFormat = "webp",
    tagline: str | None = None,
    lang: str | None = None,
    fonts: FontFiles | None = None,
) -> Texture:
    """A fascia sign as an encoded texture (see :func:`render_sign` for the arguments).

    Args:
        text: The exhibitor's name, untrusted.
        style: Size, colours, padding and weights.
        fmt: ``"webp"`` (lossless; the writer declares ``EXT_texture_webp``) or ``"png"`` (glTF
            2.0 §3.9.2 core formats, for viewers without WebP).
        tagline: An optional second line.
        lang: A BCP 47 language hint for CJK glyph forms.
        fonts: The font files; found when None.

    Returns:
        The texture, named "sign".

    Raises:
        FontError: The fonts are missing or unreadable.
    """
    image = render_sign(text, style, tagline=tagline, lang=lang, fonts=fonts)
    return _texture(image, fmt, "sign")


def label_texture(
    text: str,
    style: SignStyle = LABEL_STYLE,
    *,
    fmt: TextureFormat = "webp",
    lang: str | None = None,
    fonts: FontFiles | None = None,
) -> Texture:
    """A booth-number label ("A12") on a square tile, as an encoded texture.

    Args:
        text: The booth number, untrusted (capped at ``style.max_chars``, 12 by default).
        style: The tile; 256 x 256 with 32 px padding by default.
        fmt: ``"webp"`` (lossless) or ``"png"``.
        lang: A BCP 47 language hint for CJK glyph forms.
        fonts: The font files; found when None.

    Returns:
        The texture, named "label".

    Raises:
        FontError: The fonts are missing or unreadable.
    """
    image = render_sign(text, style, lang=lang, fonts=fonts)
    return _texture(image, fmt, "label")


def _removed(char: str) -> bool:
    return unicodedata.category(char) in _REMOVED_CATEGORIES


def _drawable(text: str, face: Face) -> str:
    """``text`` as drawn with ``face``: without the characters it lacks (no tofu box is ever
    drawn), and with a Western ellipsis when the text is not East Asian."""
    covered = coverage(face)
    kept = "".join(c for c in text if ord(c) in covered)
    if kept != text:
        missing = sorted({c for c in text if ord(c) not in covered})
        logger.warning(
            "sign: %s lacks %d characters, dropped: %r", face.name, len(missing), missing
        )
    kept = " ".join(kept.split())
    return kept.replace(ELLIPSIS, _ellipsis_for(kept))


def _ellipsis_for(text: str) -> str:
    """U+2026 in East Asian text, three full stops otherwise.

    Noto Sans CJK draws U+2026 in its full-width East Asian form, dots centred on the em box
    (JIS X 4051 and GB/T 15834 place them mid-height); Latin and Cyrillic put them on the
    baseline, which the font's full stops give.
    """
    wide = any(unicodedata.east_asian_width(c) in {"W", "F"} for c in text)
    return ELLIPSIS if wide else "..."


def _fit_lines(
    name: str, tagline: str, face_name: Face, face_tag: Face, style: SignStyle
) -> list[_Line]:
    """Fit the name (and the tagline under it) into the padded box."""
    box_w = style.width - 2 * style.padding
    box_h = style.height - 2 * style.padding
    if not tagline:
        first = _fit_line(name, face_name, (box_w, box_h), style.min_size, box_h)
        return [first] if first is not None else []
    gap = _gap(style)
    name_h = round((box_h - gap) / (1 + style.tagline_scale))
    first = _fit_line(name, face_name, (box_w, name_h), style.min_size, name_h)
    name_size = int(first.font.size) if first is not None else name_h
    # The tagline is at most tagline_scale of the name, however short the tagline is.
    tag_box = (box_w, box_h - gap - name_h)
    tag_max = max(1, round(name_size * style.tagline_scale))
    tag_min = max(1, round(style.min_size * style.tagline_scale))
    second = _fit_line(tagline, face_tag, tag_box, tag_min, tag_max)
    return [line for line in (first, second) if line is not None]


def _gap(style: SignStyle) -> int:
    """Space between the name and the tagline."""
    return max(1, (style.height - 2 * style.padding) // 16)


def _fit_line(
    text: str, face: Face, box: tuple[int, int], min_size: int, max_size: int
) -> _Line | None:
    """``text`` at the largest size up to ``max_size`` whose ink fits ``box`` (width, height).

    When it does not fit at ``min_size``, it is drawn at ``min_size`` (or smaller, if only that
    fits the height) and cut with an ellipsis to fit the width. None when nothing is drawn.
    """
    if not text:
        return None
    fonts = _FontCache(face)
    box_w, box_h = box

    def fits(size: int) -> bool:
        line = _measure(text, face, fonts(size))
        return line.width <= box_w and line.height <= box_h

    size = _largest(fits, max_size)
    if size >= min_size:
        return _measure(text, face, fonts(size))
    tall_enough = _largest(lambda s: _measure(text, face, fonts(s)).height <= box_h, max_size)
    floor = max(1, min(min_size, tall_enough))
    return _ellipsize(text, face, fonts(floor), box_w)


def _largest(predicate: Callable[[int], bool], high: int) -> int:
    """The largest ``n`` in 1..high with ``predicate(n)``, for a predicate true up to some ``n``
    and false above it; 0 when it holds for none."""
    low, best = 1, 0
    while low <= high:
        middle = (low + high) // 2
        if predicate(middle):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best


def _ellipsize(text: str, face: Face, font: ImageFont.FreeTypeFont, box_w: int) -> _Line | None:
    """The longest prefix of ``text`` that fits ``box_w``, followed by an ellipsis."""
    ellipsis = _ellipsis_for(text)
    # A text already cut by clean_text ends with an ellipsis: cut before it, not after.
    body = text.removesuffix(ellipsis)

    def cut(count: int) -> str:
        return body[:count].rstrip() + ellipsis

    count = _largest(lambda n: _measure(cut(n), face, font).width <= box_w, len(body) - 1)
    line = _measure(cut(count), face, font)
    return line if line.width <= box_w else None


def _measure(text: str, face: Face, font: ImageFont.FreeTypeFont) -> _Line:
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    return _Line(text, face, font, (int(left), int(top), int(right), int(bottom)))


class _FontCache:
    """Sizes of one face, opened once per fit. Not shared between calls: a FreeType face is not
    safe to use from two threads at once."""

    def __init__(self, face: Face) -> None:
        self._face = face
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}

    def __call__(self, size: int) -> ImageFont.FreeTypeFont:
        font = self._fonts.get(size)
        if font is None:
            font = ImageFont.truetype(
                str(self._face.path),
                size,
                index=self._face.index,
                layout_engine=ImageFont.Layout.BASIC,
            )
            self._fonts[size] = font
        return font


def _place(lines: list[_Line], style: SignStyle) -> tuple[SignLine, ...]:
    """Centre the lines as one block, each line centred horizontally on its own ink box."""
    gap = _gap(style)
    block = sum(line.height for line in lines) + gap * (len(lines) - 1)
    top = style.padding + (style.height - 2 * style.padding - block) // 2
    placed: list[SignLine] = []
    for line in lines:
        left = style.padding + (style.width - 2 * style.padding - line.width) // 2
        x, y = left - line.box[0], top - line.box[1]
        ink = (left, top, left + line.width, top + line.height)
        placed.append(SignLine(line.text, int(line.font.size), line.face, (x, y), ink, line.font))
        top += line.height + gap
    return tuple(placed)


def _texture(image: Image.Image, fmt: TextureFormat, name: str) -> Texture:
    pillow_format, mime_type = _ENCODING[fmt]
    data = encode(image, pillow_format, lossless=True)
    return Texture(
        data=data, mime_type=mime_type, width=image.width, height=image.height, name=name
    )
