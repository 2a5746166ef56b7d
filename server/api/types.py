"""Constrained field types shared by the API schemas.

Every string a client sends is bounded and free of control characters: PostgreSQL refuses NUL in
text, and names end up on signs, in headers and in other visitors' browsers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control and bidi-override characters are not allowed")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL_MULTILINE.search(value):
        raise ValueError("control and bidi-override characters are not allowed")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone is required (e.g. 2026-05-01T10:00:00Z)")
    # Check the year before converting: 0001-01-01T00:00+01:00 overflows in astimezone().
    if not 2000 <= value.year <= 2100:
        raise ValueError("must be between the years 2000 and 2100")
    return value.astimezone(UTC)


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value, re.IGNORECASE):
        raise ValueError("must be an http(s) URL")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_single_line),
]
ShortName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_single_line),
]
FasciaName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=80),
    AfterValidator(_single_line),
]
Tagline = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_single_line)
]
Description = Annotated[str, StringConstraints(max_length=5000), AfterValidator(_multi_line)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
CountryCode = Annotated[
    str,
    StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    Field(description="ISO 3166-1 alpha-2 country code", examples=["AZ"]),
]
CurrencyCode = Annotated[
    str,
    StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{3}$"),
    Field(description="ISO 4217 currency code", examples=["USD"]),
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
Url = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_url)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=320,
        pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$",
    ),
    AfterValidator(_single_line),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Price = Annotated[
    Decimal, Field(ge=0, le=Decimal("9999999999.99"), max_digits=12, decimal_places=2)
]
Metres = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
Coordinate = Annotated[float, Field(ge=-10000, le=10000, allow_inf_nan=False)]
SearchText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_single_line),
]
FileName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_single_line),
    Field(description="display name only; storage keys are generated"),
]
