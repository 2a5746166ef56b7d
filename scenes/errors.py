"""The scenes' error tree. Every refusal is a :class:`SceneError` with a stable ``code``.

The server maps them to HTTP once, from ``status`` (like ``pipeline.errors``); messages are safe to
show to the exhibitor who caused them.

    SceneError                       422 scene_invalid
    +-- StyleError                   422 style_invalid       (a sign style that cannot be drawn)
    +-- FontError                    503 font_missing        (the machine lacks fonts-noto-cjk)
                                         font_invalid        (the font file cannot be read)

A :class:`FontError` is the deployment's fault, not the request's: 503, like a missing service.
"""

from __future__ import annotations

from pathlib import Path


class SceneError(Exception):
    """Base of every error the scenes package raises on purpose."""

    code: str = "scene_invalid"
    status: int = 422

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class StyleError(SceneError):
    """A sign or label style with a bad size, padding or colour."""

    code = "style_invalid"


class FontError(SceneError):
    """The font files are missing or unreadable.

    Attributes:
        paths: The files or directories that were looked at.
    """

    code = "font_missing"
    status = 503

    def __init__(
        self, message: str, *, paths: tuple[Path, ...] = (), code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.paths = paths
