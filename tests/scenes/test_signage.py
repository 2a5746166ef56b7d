"""Booth signs: names in Latin, Cyrillic and CJK render their glyphs (no tofu), fit, stay safe.

The rendered acceptance signs are saved to test-artifacts/scenes/ for a person to look at.
"""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from scenes.errors import FontError, SceneError, StyleError
from scenes.fonts import (
    BOLD_FILE,
    PACKAGE,
    REGULAR_FILE,
    Face,
    FontFiles,
    choose_face,
    coverage,
    find_fonts,
    missing_glyphs,
    region_for,
)
from scenes.signage import (
    ELLIPSIS,
    FASCIA_STYLE,
    NAME_MAX_CHARS,
    SignStyle,
    clean_text,
    label_texture,
    layout_sign,
    render_sign,
    sign_texture,
)
from tests.paths import REPO

ARTIFACTS = REPO / "test-artifacts" / "scenes"

# Real-world exhibitor names: a Scottish honey producer, an Altai honey farm, a Ceylon tea
# company, a Japanese tea garden (kana), a Korean green tea farm (Hangul).
NAMES = {
    "en": "Highland Honey Co.",
    "ru": "Алтайский мёд",
    "zh": "锡兰红茶有限公司",
    "ja": "やまと茶園",
    "ko": "제주 녹차 농원",
}
# Letters Noto Sans CJK lacks, drawn by the fallback: Polish, Ukrainian, Greek with accents.
FALLBACK_NAMES = ("Miód Łąkowy z Łodzi", "Київська пасіка", "Μέλι Ελλάδας")
# A code point no font maps (the last private-use one of plane 16): FreeType draws .notdef.
NOTDEF = "\U0010fffd"


@pytest.fixture(scope="module")
def fonts() -> FontFiles:
    """The installed fonts (`.ci/system-packages` installs them; a missing font fails here)."""
    return find_fonts()


def ink_mask(image: Image.Image, background: str) -> NDArray[np.bool_]:
    """Pixels that differ from the background colour."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    rgb = np.array(Image.new("RGB", (1, 1), background).getpixel((0, 0)), dtype=np.int16)
    mask: NDArray[np.bool_] = np.any(pixels != rgb, axis=2)
    return mask


def assert_ink_inside_padding(image: Image.Image, style: SignStyle) -> None:
    """Some ink, and all of it inside the padded box."""
    mask = ink_mask(image, style.background)
    assert mask.any(), "the sign has no ink"
    ys, xs = np.nonzero(mask)
    assert xs.min() >= style.padding, f"ink at x={xs.min()} left of the padding"
    assert ys.min() >= style.padding, f"ink at y={ys.min()} above the padding"
    assert xs.max() < style.width - style.padding, f"ink at x={xs.max()} right of the padding"
    assert ys.max() < style.height - style.padding, f"ink at y={ys.max()} below the padding"


def glyph_pixels(face: Face, text: str, size: int = 64) -> NDArray[np.uint8]:
    """``text`` drawn alone with ``face`` at a fixed origin, as a greyscale array."""
    font = ImageFont.truetype(
        str(face.path), size, index=face.index, layout_engine=ImageFont.Layout.BASIC
    )
    canvas = Image.new("L", (size * 3, size * 2), 0)
    ImageDraw.Draw(canvas).text((size, size * 3 // 2), text, fill=255, font=font, anchor="ls")
    return np.asarray(canvas)


def assert_no_tofu(face: Face, text: str) -> None:
    """Every character is in the face's cmap and draws some ink that is not the .notdef box."""
    covered = coverage(face)
    tofu = glyph_pixels(face, NOTDEF)
    assert tofu.any(), f"{face.name}'s .notdef draws nothing: the comparison would prove nothing"
    for char in dict.fromkeys(text):
        if char.isspace():
            continue
        assert ord(char) in covered, f"{char!r} (U+{ord(char):04X}) is not in {face.name}'s cmap"
        glyph = glyph_pixels(face, char)
        assert glyph.any(), f"{char!r} draws no ink with {face.name}"
        assert not np.array_equal(glyph, tofu), f"{char!r} draws the .notdef box"


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def save_artifact(image: Image.Image, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    image.save(path, "PNG")
    return path


# The acceptance test of the issue.


@pytest.mark.parametrize("lang", ["en", "ru", "zh", "ja", "ko"])
def test_sign_textures_for_english_russian_chinese_japanese_and_korean_names_render_the_glyphs(
    fonts: FontFiles, lang: str
) -> None:
    name = NAMES[lang]
    texture = sign_texture(name, fonts=fonts)
    image = decode(texture.data)
    save_artifact(image, f"sign-{lang}.png")

    (line,) = layout_sign(name, fonts=fonts)
    assert line.text == name
    assert missing_glyphs(name, bold=True, fonts=fonts) == []
    assert_no_tofu(line.face, name)
    assert (texture.width, texture.height) == (image.width, image.height) == (1024, 160)
    assert_ink_inside_padding(image, FASCIA_STYLE)
    # Lossless: the texture holds exactly the rendered pixels.
    assert image.convert("RGB").tobytes() == render_sign(name, fonts=fonts).tobytes()


def test_the_tofu_check_recognises_a_character_the_font_lacks(fonts: FontFiles) -> None:
    face = choose_face("नमस्ते", fonts=fonts)
    assert "न" in missing_glyphs("नमस्ते", fonts=fonts)
    with pytest.raises(AssertionError, match="not in"):
        assert_no_tofu(face, "न")
    assert np.array_equal(glyph_pixels(face, "न"), glyph_pixels(face, NOTDEF))


@pytest.mark.parametrize("name", FALLBACK_NAMES)
def test_letters_noto_sans_cjk_lacks_are_drawn_with_the_fallback_font(
    fonts: FontFiles, name: str
) -> None:
    primary = choose_face("Highland", bold=True, fonts=fonts)
    assert set(name) - {chr(c) for c in coverage(primary)}, "the CJK face draws it all already"
    (line,) = layout_sign(name, fonts=fonts)
    assert line.face.path == fonts.fallback_bold
    assert line.text == name
    assert missing_glyphs(name, bold=True, fonts=fonts) == []
    assert_no_tofu(line.face, name)


def test_without_a_fallback_missing_letters_are_dropped_not_drawn_as_tofu(tmp_path: Path) -> None:
    fonts = find_fonts(fallback_search=[tmp_path])
    assert fonts.fallback is None
    assert missing_glyphs("Łódź", fonts=fonts) == ["Ł", "ź"]
    (line,) = layout_sign("Miód z Łodzi", fonts=fonts)
    assert line.text == "Miód z odzi"
    assert_no_tofu(line.face, line.text)


def test_a_name_nothing_can_draw_gives_a_plain_background(fonts: FontFiles) -> None:
    style = SignStyle(width=200, height=50, padding=5)
    assert layout_sign("नमस्ते", style, fonts=fonts) == ()
    image = render_sign("नमस्ते", style, fonts=fonts)
    assert not ink_mask(image, style.background).any()


# Face choice.


@pytest.mark.parametrize(
    ("text", "lang", "region"),
    [
        ("やまと茶園", None, "JP"),  # kana
        ("京都抹茶", "ja", "JP"),  # Han only, with a Japanese hint
        ("제주 녹차 농원", None, "KR"),
        ("锡兰红茶有限公司", None, "SC"),  # Han without kana
        ("錫蘭紅茶有限公司", "zh-TW", "TC"),
        ("錫蘭紅茶有限公司", "zh-Hant", "TC"),
        ("錫蘭紅茶有限公司", "zh_HK", "HK"),
        ("锡兰红茶有限公司", "zh-Hans-HK", "SC"),
        ("やまと茶園", "ko", "KR"),  # the hint wins
        ("Highland Honey Co.", None, "SC"),
        ("Алтайский мёд", "ru", "SC"),  # a non-CJK hint changes nothing
    ],
)
def test_the_face_follows_the_script_and_the_language_hint(
    fonts: FontFiles, text: str, lang: str | None, region: str
) -> None:
    assert region_for(text, lang) == region
    face = choose_face(text, lang=lang, fonts=fonts)
    assert face.name == f"Noto Sans CJK {region}"


def test_japanese_and_chinese_faces_draw_the_same_han_character_differently(
    fonts: FontFiles,
) -> None:
    # U+9AA8 骨 is a textbook case of regional glyph forms (Unicode 15.1 §18.1, Han unification).
    japanese = choose_face("骨", lang="ja", fonts=fonts)
    chinese = choose_face("骨", lang="zh-CN", fonts=fonts)
    assert japanese.path == chinese.path
    assert japanese.index != chinese.index
    assert not np.array_equal(glyph_pixels(japanese, "骨"), glyph_pixels(chinese, "骨"))


def test_the_name_is_bold_and_the_tagline_regular(fonts: FontFiles) -> None:
    name, tagline = layout_sign("Highland Honey Co.", tagline="Raw mountain honey", fonts=fonts)
    assert name.face.path.name == BOLD_FILE
    assert tagline.face.path.name == REGULAR_FILE
    plain = layout_sign("Highland Honey Co.", SignStyle(bold=False), fonts=fonts)
    assert plain[0].face.path.name == REGULAR_FILE


# Font discovery.


def test_the_debian_fonts_are_found_with_both_weights(fonts: FontFiles) -> None:
    assert fonts.regular.name == REGULAR_FILE
    assert fonts.regular.is_file()
    assert fonts.bold is not None
    assert fonts.bold.name == BOLD_FILE
    assert fonts.fallback is not None
    assert fonts.fallback_bold is not None


def test_missing_fonts_raise_a_scene_error_naming_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(FontError) as caught:
        find_fonts(search=[tmp_path / "fonts"])
    error = caught.value
    assert isinstance(error, SceneError)
    assert error.code == "font_missing"
    assert error.status == 503
    assert PACKAGE in error.message
    assert "apt-get install" in error.message
    assert error.paths == (tmp_path / "fonts",)


def test_an_explicit_font_path_overrides_the_search(fonts: FontFiles, tmp_path: Path) -> None:
    assert find_fonts(fonts.regular, search=[tmp_path]).regular == fonts.regular
    assert find_fonts(fonts.regular).bold == fonts.bold  # the -Bold sibling
    (tmp_path / REGULAR_FILE).symlink_to(fonts.regular)
    found = find_fonts(tmp_path)
    assert found.regular == tmp_path / REGULAR_FILE
    assert found.bold is None
    # No bold installed: the regular weight is used for the name.
    assert choose_face("Highland", bold=True, fonts=found).path == found.regular
    with pytest.raises(FontError, match=PACKAGE):
        find_fonts(tmp_path / "elsewhere")


@pytest.mark.parametrize("data", [b"ttcf" + b"\0" * 60, b"not a font at all", b""])
def test_a_file_that_is_not_a_font_raises_font_invalid(tmp_path: Path, data: bytes) -> None:
    (tmp_path / REGULAR_FILE).write_bytes(data)
    broken = find_fonts(tmp_path, fallback_search=[])
    with pytest.raises(FontError) as caught:
        render_sign("Highland Honey Co.", fonts=broken)
    assert caught.value.code == "font_invalid"


# Fitting and cutting.


def test_a_short_name_is_drawn_larger_than_a_long_one(fonts: FontFiles) -> None:
    (short,) = layout_sign("Ufa Honey", fonts=fonts)
    (long,) = layout_sign("Highland Honey Cooperative of Perthshire", fonts=fonts)
    assert short.size > long.size >= FASCIA_STYLE.min_size


@pytest.mark.parametrize("lang", list(NAMES))
def test_the_size_is_the_largest_at_which_the_name_fits_the_padded_box(
    fonts: FontFiles, lang: str
) -> None:
    style = FASCIA_STYLE
    (line,) = layout_sign(NAMES[lang], style, fonts=fonts)
    box_w, box_h = style.width - 2 * style.padding, style.height - 2 * style.padding

    def fits(size: int) -> bool:
        font = ImageFont.truetype(
            str(line.face.path), size, index=line.face.index, layout_engine=ImageFont.Layout.BASIC
        )
        left, top, right, bottom = font.getbbox(line.text, anchor="ls")
        return right - left <= box_w and bottom - top <= box_h

    assert fits(line.size)
    assert line.size == box_h or not fits(line.size + 1)


@pytest.mark.parametrize(
    ("name", "ellipsis"),
    [
        ("The Highland Honey and Heather Mead Cooperative of Perthshire and Kinross", "..."),
        ("Алтайская пчеловодческая компания «Горный мёд и травы Сибири»", "..."),
        ("锡兰红茶有限公司" * 6, ELLIPSIS),
    ],
    ids=["latin", "cyrillic", "chinese"],
)
def test_a_name_too_long_for_the_box_is_cut_with_an_ellipsis_at_the_minimum_size(
    fonts: FontFiles, name: str, ellipsis: str
) -> None:
    style = SignStyle(width=512, height=80, padding=8)
    (line,) = layout_sign(name, style, fonts=fonts)
    assert line.size == style.min_size
    assert line.text.endswith(ellipsis)
    kept = line.text.removesuffix(ellipsis)
    assert name.startswith(kept)
    assert len(kept) >= 10
    image = render_sign(name, style, fonts=fonts)
    assert_ink_inside_padding(image, style)
    save_artifact(image, f"sign-cut-{len(name)}-chars.png")


def test_a_tagline_sits_under_the_name_in_a_smaller_size(fonts: FontFiles) -> None:
    style = FASCIA_STYLE
    tagline = "Raw mountain honey since 1987 — Perthshire, Scotland"
    name, second = layout_sign("Highland Honey Co.", style, tagline=tagline, fonts=fonts)
    assert second.text == tagline
    assert second.size < name.size
    assert second.ink[1] > name.ink[3]
    image = render_sign("Highland Honey Co.", style, tagline=tagline, fonts=fonts)
    assert_ink_inside_padding(image, style)
    save_artifact(image, "sign-tagline.png")


def test_a_booth_label_is_a_square_tile_with_the_number_inside_the_padding(
    fonts: FontFiles,
) -> None:
    texture = label_texture("A12", fonts=fonts)
    image = decode(texture.data)
    assert texture.mime_type == "image/webp"
    assert texture.name == "label"
    assert image.size == (256, 256)
    assert_ink_inside_padding(image, SignStyle(width=256, height=256, padding=32))
    (line,) = layout_sign("A12", SignStyle(width=256, height=256, padding=32), fonts=fonts)
    assert line.text == "A12"
    save_artifact(image, "label-a12.png")


# Colours, formats, determinism.


def test_the_sign_uses_the_style_colours(fonts: FontFiles) -> None:
    style = SignStyle(background="#fdf6e3", foreground="#b22222")
    image = render_sign("Highland Honey Co.", style, fonts=fonts)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16) or []}
    assert image.getpixel((0, 0)) == (0xFD, 0xF6, 0xE3)
    assert (0xB2, 0x22, 0x22) in colours  # solid strokes
    # Every other pixel is an anti-aliased blend of the two: between them, channel by channel.
    low = np.minimum([0xFD, 0xF6, 0xE3], [0xB2, 0x22, 0x22])
    high = np.maximum([0xFD, 0xF6, 0xE3], [0xB2, 0x22, 0x22])
    pixels = np.asarray(image).reshape(-1, 3)
    assert ((pixels >= low) & (pixels <= high)).all()


def test_lossless_webp_is_smaller_than_png_and_holds_the_same_pixels(fonts: FontFiles) -> None:
    for name in NAMES.values():
        webp = sign_texture(name, fonts=fonts)
        png = sign_texture(name, fmt="png", fonts=fonts)
        assert (webp.mime_type, png.mime_type) == ("image/webp", "image/png")
        assert len(webp.data) < len(png.data)
        assert decode(webp.data).convert("RGB").tobytes() == decode(png.data).tobytes()


def test_the_same_name_and_style_give_the_same_pixels_and_bytes(fonts: FontFiles) -> None:
    first = sign_texture(NAMES["zh"], tagline=NAMES["en"], fonts=fonts)
    layout_sign(NAMES["ja"], fonts=fonts)  # other work in between changes nothing
    second = sign_texture(NAMES["zh"], tagline=NAMES["en"], fonts=fonts)
    assert first.data == second.data
    assert render_sign(NAMES["ru"], fonts=fonts).tobytes() == (
        render_sign(NAMES["ru"], fonts=fonts).tobytes()
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"width": 0},
        {"height": 5000},
        {"padding": 80},
        {"padding": -1},
        {"background": "red"},
        {"foreground": "#12345"},
        {"min_size": 0},
        {"tagline_scale": 0.0},
        {"max_chars": 0},
    ],
)
def test_a_style_that_cannot_be_drawn_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(StyleError) as caught:
        SignStyle(**changes)  # type: ignore[arg-type]
    assert caught.value.code == "style_invalid"


# Untrusted text.


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\u202eevil.exe\u202c Honey", "evil.exe Honey"),  # right-to-left override
        ("\u2067Honey\u2069 Co.", "Honey Co."),  # isolates
        ("Highland\x00\x07\x1b[31m Honey\x85\x9b", "Highland[31m Honey"),  # C0, C1
        ("  Highland\t\nHoney \u3000 Co.  ", "Highland Honey Co."),
        ("Hon\u200bey\ufeff", "Honey"),  # zero-width space, BOM
        ("Алтайский ме\u0308д", "Алтайский мёд"),  # NFC composes e + diaeresis
        ("\ud800Honey\udfff", "Honey"),  # lone surrogates
    ],
)
def test_control_and_format_characters_are_removed_and_whitespace_collapsed(
    raw: str, clean: str
) -> None:
    assert clean_text(raw) == clean


def test_a_name_is_capped_at_80_characters() -> None:
    capped = clean_text("Highland Honey " * 20)
    assert len(capped) == NAME_MAX_CHARS
    assert capped.endswith(ELLIPSIS)
    assert clean_text("x" * NAME_MAX_CHARS) == "x" * NAME_MAX_CHARS


REMOVED = {"Cc", "Cf", "Cs", "Co", "Cn"}
# Any code point, lone surrogates included (Python strings may hold them; UTF-8 cannot).
ANY_CHAR = st.characters(exclude_categories=[])
# Mostly drawable text, with combining marks, wide forms and the fallback's letters mixed in.
SIGN_CHAR = ANY_CHAR | st.sampled_from(
    "Highland Honey Co. Алтайский мёд 锡兰红茶 やまと茶園 제주 녹차 ŁźїΆ… \u0301\u0308\u3000"
)


@given(st.text(ANY_CHAR, max_size=300), st.integers(1, 120))
def test_cleaned_text_has_no_controls_no_double_spaces_and_is_capped(
    raw: str, max_chars: int
) -> None:
    clean = clean_text(raw, max_chars)
    assert len(clean) <= max_chars
    assert not any(unicodedata.category(c) in REMOVED for c in clean)
    assert clean == clean.strip()
    assert "  " not in clean
    assert all(c == " " or not c.isspace() for c in clean)
    assert clean_text(clean, max_chars) == clean


SMALL = SignStyle(width=192, height=48, padding=6, min_size=10)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(SIGN_CHAR, max_size=120),
    tagline=st.none() | st.text(SIGN_CHAR, max_size=60),
    lang=st.none() | st.sampled_from(["ja", "ko", "zh-TW", "zh-HK", "ru", "x-🦆"]),
)
def test_any_text_renders_a_sign_of_the_requested_size_without_ink_outside_the_padding(
    fonts: FontFiles, name: str, tagline: str | None, lang: str | None
) -> None:
    image = render_sign(name, SMALL, tagline=tagline, lang=lang, fonts=fonts)
    assert image.mode == "RGB"
    assert image.size == (SMALL.width, SMALL.height)
    mask = ink_mask(image, SMALL.background)
    p = SMALL.padding
    outside = mask.copy()
    outside[p:-p, p:-p] = False
    assert not outside.any(), "ink in the padding"
    for line in layout_sign(name, SMALL, tagline=tagline, lang=lang, fonts=fonts):
        covered = coverage(line.face)
        assert all(ord(c) in covered for c in line.text), "a character would be drawn as tofu"
