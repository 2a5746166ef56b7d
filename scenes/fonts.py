"""Font discovery, face choice and glyph coverage for signage.

Signs use Noto Sans CJK from Debian's ``fonts-noto-cjk``: one family that draws Latin, Cyrillic,
Greek, Han, kana and Hangul, shipped as two OpenType collections (``NotoSansCJK-Regular.ttc`` and
``NotoSansCJK-Bold.ttc``). Each collection holds one face per region (JP, KR, SC, TC, HK, plus
monospaced twins). The faces cover the same characters but draw Han differently (the same code
point has a Japanese, Korean, Simplified or Traditional Chinese form), so the face is chosen by
script and language:

- an explicit ``lang`` hint wins when it names a CJK language ("ja", "ko", "zh-TW", "zh-Hant",
  "zh-HK", "zh", "zh-Hans"...);
- otherwise kana means Japanese (JP), Hangul means Korean (KR), and anything else, Han without
  kana included, takes Simplified Chinese (SC). Latin and Cyrillic look the same in every face.

Coverage is read from the face's ``cmap`` table with fontTools (OpenType spec, "cmap - Character
to Glyph Index Mapping Table"): a code point absent from it would be drawn as glyph 0,
``.notdef``, the "tofu" box.

Noto Sans CJK's Latin, Cyrillic and Greek stop where the CJK character sets stop: ISO 8859-1 and
the Russian alphabet are there, but not Polish Ł, Czech ř, Turkish ş, Romanian ș, Ukrainian ї,
Kazakh ә, nor accented Greek. A text the CJK face cannot draw whole is drawn with DejaVu Sans
(Debian's ``fonts-dejavu-core``, 3 MB, already pulled in by fontconfig on most systems) when
DejaVu draws more of it; one face per text, never a mix within a line.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

# fontTools ships no type information (no py.typed); its values are wrapped in typed helpers here.
from fontTools.ttLib import TTCollection, TTFont, TTLibError  # type: ignore[import-untyped]

from scenes.errors import FontError

PACKAGE = "fonts-noto-cjk"
FONT_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts/opentype/noto"),)
REGULAR_FILE = "NotoSansCJK-Regular.ttc"
BOLD_FILE = "NotoSansCJK-Bold.ttc"
FALLBACK_PACKAGE = "fonts-dejavu-core"
FALLBACK_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts/truetype/dejavu"),)
FALLBACK_REGULAR_FILE = "DejaVuSans.ttf"
FALLBACK_BOLD_FILE = "DejaVuSans-Bold.ttf"

Region = Literal["JP", "KR", "SC", "TC", "HK"]
REGIONS: tuple[Region, ...] = ("JP", "KR", "SC", "TC", "HK")
DEFAULT_REGION: Region = "SC"

# What fontTools raises on a damaged file: its own error, but also bare asserts on header fields
# and the struct/lookup errors of a truncated table.
_READ_ERRORS = (OSError, TTLibError, AssertionError, struct.error, KeyError, IndexError, ValueError)

# Unicode blocks (Unicode 15.1, Blocks.txt) that only Japanese or only Korean writing uses.
_KANA = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0xFF66, 0xFF9F),  # halfwidth Katakana
    (0x1AFF0, 0x1B16F),  # Kana Extended-B, Kana Supplement, Kana Extended-A, Small Kana Extension
)
_HANGUL = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),  # Hangul Syllables, Hangul Jamo Extended-B
    (0xFFA0, 0xFFDC),  # halfwidth Hangul
)


@dataclass(frozen=True, slots=True)
class FontFiles:
    """The font files signs are drawn with.

    Attributes:
        regular: The regular weight (a collection or a single font file).
        bold: The bold weight, or None when it is not installed (regular is used instead).
        fallback: The font for Latin, Cyrillic and Greek the CJK font lacks, or None.
        fallback_bold: Its bold weight, or None.
    """

    regular: Path
    bold: Path | None = None
    fallback: Path | None = None
    fallback_bold: Path | None = None

    def weight(self, bold: bool) -> Path:
        """The bold file when asked for and present, else the regular one."""
        return self.bold if bold and self.bold is not None else self.regular

    def fallback_weight(self, bold: bool) -> Path | None:
        """The fallback's bold file when asked for and present, else its regular one."""
        return self.fallback_bold if bold and self.fallback_bold is not None else self.fallback


@dataclass(frozen=True, slots=True)
class Face:
    """One face of a font file: what Pillow's ``ImageFont.truetype(path, index=...)`` opens."""

    path: Path
    index: int
    name: str


def find_fonts(
    path: str | Path | None = None,
    *,
    search: Sequence[Path] = FONT_DIRS,
    fallback_search: Sequence[Path] = FALLBACK_DIRS,
) -> FontFiles:
    """Find the Noto Sans CJK files, and the DejaVu Sans fallback when it is installed.

    Args:
        path: An explicit font file or directory that overrides ``search``. For a file, the bold
            weight is the sibling named with ``-Bold`` in place of ``-Regular``, when it exists.
        search: Directories searched for ``NotoSansCJK-Regular.ttc`` (and ``-Bold``) when no
            ``path`` is given; Debian's location by default.
        fallback_search: Directories searched for ``DejaVuSans.ttf`` (and ``-Bold``); empty for
            no fallback.

    Returns:
        The regular file, and the bold and fallback ones when installed.

    Raises:
        FontError: ``font_missing``: no regular font file was found; the message names the
            Debian package to install.
    """
    fallback, fallback_bold = _find_pair(fallback_search, FALLBACK_REGULAR_FILE, FALLBACK_BOLD_FILE)
    if path is not None and Path(path).is_file():
        given = Path(path)
        bold = given.with_name(given.name.replace("-Regular", "-Bold"))
        return FontFiles(
            given, bold if bold != given and bold.is_file() else None, fallback, fallback_bold
        )
    dirs = (Path(path),) if path is not None else tuple(Path(d) for d in search)
    regular, bold_file = _find_pair(dirs, REGULAR_FILE, BOLD_FILE)
    if regular is None:
        where = ", ".join(str(d) for d in dirs)
        raise FontError(
            f"no {REGULAR_FILE} in {where}: install the Debian package {PACKAGE} "
            f"(apt-get install {PACKAGE}) or pass the font's path",
            paths=dirs,
        )
    return FontFiles(regular, bold_file, fallback, fallback_bold)


def _find_pair(dirs: Sequence[Path], regular: str, bold: str) -> tuple[Path | None, Path | None]:
    """The regular file and its bold sibling from the first directory that has the regular."""
    for directory in dirs:
        found = Path(directory) / regular
        if found.is_file():
            sibling = Path(directory) / bold
            return found, sibling if sibling.is_file() else None
    return None, None


def region_for(text: str, lang: str | None = None) -> Region:
    """The Noto CJK region whose glyphs suit ``text``.

    Args:
        text: The text to draw.
        lang: A BCP 47 language tag ("ja", "ko", "zh-TW"...); it wins when it names a CJK
            language, and is ignored otherwise.

    Returns:
        "JP", "KR", "SC", "TC" or "HK".
    """
    hinted = _region_from_lang(lang) if lang else None
    if hinted is not None:
        return hinted
    codepoints = [ord(c) for c in text]
    if any(_within(cp, _KANA) for cp in codepoints):
        return "JP"
    if any(_within(cp, _HANGUL) for cp in codepoints):
        return "KR"
    return DEFAULT_REGION


def choose_face(
    text: str, *, lang: str | None = None, bold: bool = False, fonts: FontFiles | None = None
) -> Face:
    """The face of the installed fonts to draw ``text`` with.

    Args:
        text: The text to draw.
        lang: A BCP 47 language hint (see :func:`region_for`).
        bold: Use the bold weight when it is installed.
        fonts: The font files; found with :func:`find_fonts` when None.

    Returns:
        The CJK face of the region (for a collection, its proportional face; for a single font
        file, its only face), or the fallback's when the CJK face lacks some of ``text`` and the
        fallback lacks less of it.

    Raises:
        FontError: ``font_missing`` (no font) or ``font_invalid`` (the file is not a font).
    """
    fonts = fonts or find_fonts()
    primary = _face(fonts.weight(bold), region_for(text, lang))
    needed = {ord(c) for c in text}
    lacking = len(needed - coverage(primary))
    fallback_path = fonts.fallback_weight(bold)
    if lacking == 0 or fallback_path is None:
        return primary
    fallback = _face(fallback_path, DEFAULT_REGION)
    return fallback if len(needed - coverage(fallback)) < lacking else primary


def _face(path: Path, region: Region) -> Face:
    names = _face_names(path)
    index = _face_index(names, region)
    return Face(path, index, names[index])


def coverage(face: Face) -> frozenset[int]:
    """The code points ``face`` has a glyph for (the keys of its best Unicode ``cmap``).

    Raises:
        FontError: ``font_invalid``: the file cannot be read as a font.
    """
    return _coverage(face.path, face.index)


def missing_glyphs(
    text: str, *, lang: str | None = None, bold: bool = False, fonts: FontFiles | None = None
) -> list[str]:
    """The characters of ``text`` that the chosen face cannot draw (they would be tofu).

    Args:
        text: The text, as it will be drawn (see ``scenes.signage.clean_text``).
        lang: A BCP 47 language hint (see :func:`region_for`).
        bold: Check the bold weight.
        fonts: The font files; found with :func:`find_fonts` when None.

    Returns:
        Each missing character once, in order of first appearance; empty when all are drawn.

    Raises:
        FontError: ``font_missing`` or ``font_invalid``.
    """
    covered = coverage(choose_face(text, lang=lang, bold=bold, fonts=fonts))
    return list(dict.fromkeys(c for c in text if ord(c) not in covered))


def _region_from_lang(lang: str) -> Region | None:
    subtags = lang.replace("_", "-").lower().split("-")
    primary, rest = subtags[0], set(subtags[1:])
    if primary == "ja":
        return "JP"
    if primary == "ko":
        return "KR"
    if primary not in {"zh", "yue"}:
        return None
    if "hans" in rest:
        return "SC"
    if rest & {"hk", "mo"} or primary == "yue":
        return "HK"
    if rest & {"hant", "tw"}:
        return "TC"
    return "SC"


def _within(codepoint: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= codepoint <= high for low, high in ranges)


def _face_index(names: tuple[str, ...], region: Region) -> int:
    """The first proportional face whose family ends with the region ("Noto Sans CJK JP")."""
    for index, name in enumerate(names):
        words = name.split()
        if words and words[-1] == region and "Mono" not in words:
            return index
    return 0


@lru_cache(maxsize=8)
def _face_names(path: Path) -> tuple[str, ...]:
    """The family name (name ID 1) of every face in the file, in index order."""
    try:
        if _is_collection(path):
            with TTCollection(str(path), lazy=True) as collection:
                return tuple(str(font["name"].getDebugName(1)) for font in collection.fonts)
        with TTFont(str(path), lazy=True) as font:
            return (str(font["name"].getDebugName(1)),)
    except _READ_ERRORS as exc:
        raise _invalid(path, exc) from exc


@lru_cache(maxsize=16)
def _coverage(path: Path, index: int) -> frozenset[int]:
    try:
        if _is_collection(path):
            with TTCollection(str(path), lazy=True) as collection:
                cmap = collection.fonts[index].getBestCmap()
        else:
            with TTFont(str(path), lazy=True) as font:
                cmap = font.getBestCmap()
    except _READ_ERRORS as exc:
        raise _invalid(path, exc) from exc
    if cmap is None:
        raise _invalid(path, None)
    return frozenset(int(codepoint) for codepoint in cmap)


def _is_collection(path: Path) -> bool:
    # OpenType spec, "Font Collections": a collection file starts with the tag 'ttcf'.
    with path.open("rb") as file:
        return file.read(4) == b"ttcf"


def _invalid(path: Path, exc: BaseException | None) -> FontError:
    reason = f": {exc}" if exc is not None else ": no Unicode cmap"
    return FontError(
        f"{path} is not a usable font{reason}; reinstall {PACKAGE}",
        paths=(path,),
        code="font_invalid",
    )
