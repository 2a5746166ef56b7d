"""Request and response models: ``XCreate`` / ``XUpdate`` in, ``XPublic`` out.

Create and update models forbid unknown fields, so a typo is a 422 and not silently ignored.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from server.api.types import (
    AwareDatetime,
    Category,
    Color,
    Coordinate,
    CountryCode,
    CurrencyCode,
    Description,
    Email,
    FasciaName,
    FileName,
    Language,
    Metres,
    Name,
    Password,
    Price,
    ShortName,
    Slug,
    Tagline,
    Url,
)
from server.db.models import AssetKind, AssetStatus, BoothTemplate, Role, TourStatus, UploadMethod

T = TypeVar("T")

# The languages a product name may be given in (the pavilion's three working languages).
ProductLanguage = Annotated[str, StringConstraints(pattern=r"^(en|ru|zh)$")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- auth and users -------------------------------------------------------------------------


class LoginRequest(In):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class GuestRequest(In):
    display_name: ShortName


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_at: datetime
    role: Role


class Me(BaseModel):
    subject: str
    role: Role
    display_name: str
    organisation_id: uuid.UUID | None
    guest: bool


class UserCreate(In):
    email: Email
    display_name: ShortName
    password: Password
    role: Role
    organisation_id: uuid.UUID | None = None


class UserPublic(Out):
    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    organisation_id: uuid.UUID | None
    is_active: bool


# --- organisations --------------------------------------------------------------------------


class OrganisationCreate(In):
    name: Name
    country: CountryCode
    description: Description = ""
    website: Url | None = None


class OrganisationUpdate(In):
    name: Name | None = None
    country: CountryCode | None = None
    description: Description | None = None
    website: Url | None = None


class OrganisationPublic(Out):
    id: uuid.UUID
    name: str
    country: str
    description: str
    website: str | None


# --- expos and halls ------------------------------------------------------------------------


class _Dates(In):
    starts_on: date | None = None
    ends_on: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Dates:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ExpoCreate(_Dates):
    slug: Slug
    name: Name
    description: Description = ""


class ExpoUpdate(_Dates):
    name: Name | None = None
    description: Description | None = None


class ExpoPublic(Out):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    starts_on: date | None
    ends_on: date | None


class HallCreate(In):
    name: Name
    width: Metres = 60.0
    depth: Metres = 40.0


class HallUpdate(In):
    name: Name | None = None
    width: Metres | None = None
    depth: Metres | None = None


class HallPublic(Out):
    id: uuid.UUID
    expo_id: uuid.UUID
    name: str
    width: float
    depth: float


# --- booth slots and booths -----------------------------------------------------------------

SlotNumber = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,15}$")]
Rotation = Annotated[
    int, Field(description="degrees", json_schema_extra={"enum": [0, 90, 180, 270]})
]


class SlotCreate(In):
    number: SlotNumber
    template: BoothTemplate
    width: Metres
    depth: Metres
    x: Coordinate
    z: Coordinate
    rotation: Rotation = 0

    @model_validator(mode="after")
    def _right_angle(self) -> SlotCreate:
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError("rotation must be 0, 90, 180 or 270")
        return self


class SlotUpdate(In):
    template: BoothTemplate | None = None
    width: Metres | None = None
    depth: Metres | None = None
    x: Coordinate | None = None
    z: Coordinate | None = None
    rotation: Rotation | None = None

    @model_validator(mode="after")
    def _right_angle(self) -> SlotUpdate:
        if self.rotation is not None and self.rotation not in (0, 90, 180, 270):
            raise ValueError("rotation must be 0, 90, 180 or 270")
        return self


class SlotPublic(Out):
    id: uuid.UUID
    hall_id: uuid.UUID
    number: str
    template: BoothTemplate
    width: float
    depth: float
    x: float
    z: float
    rotation: int
    booth_id: uuid.UUID | None = None


class BoothCreate(In):
    slot_id: uuid.UUID
    organisation_id: uuid.UUID
    fascia_name: FasciaName
    tagline: Tagline = ""
    primary_color: Color = "#1f4e79"
    accent_color: Color = "#f2c14e"


class BoothUpdate(In):
    fascia_name: FasciaName | None = None
    tagline: Tagline | None = None
    primary_color: Color | None = None
    accent_color: Color | None = None


class BoothPublic(Out):
    id: uuid.UUID
    hall_id: uuid.UUID
    slot_id: uuid.UUID
    slot_number: str
    template: BoothTemplate
    organisation: OrganisationPublic
    fascia_name: str
    tagline: str
    primary_color: str
    accent_color: str
    product_count: int
    logo_url: str | None = None


# --- products and assets --------------------------------------------------------------------


class ProductCreate(In):
    name: Name
    names: dict[ProductLanguage, Name] = Field(default_factory=dict, max_length=3)
    description: Description = ""
    category: Category
    country: CountryCode
    price: Price | None = None
    currency: CurrencyCode | None = None
    link: Url | None = None

    @model_validator(mode="after")
    def _price_has_currency(self) -> ProductCreate:
        if self.price is not None and self.currency is None:
            raise ValueError("a price needs a currency")
        return self


class ProductUpdate(In):
    name: Name | None = None
    names: dict[ProductLanguage, Name] | None = Field(default=None, max_length=3)
    description: Description | None = None
    category: Category | None = None
    country: CountryCode | None = None
    price: Price | None = None
    currency: CurrencyCode | None = None
    link: Url | None = None


class ProductPublic(Out):
    id: uuid.UUID
    booth_id: uuid.UUID
    name: str
    names: dict[str, str]
    description: str
    category: str
    country: str
    price: Decimal | None
    currency: str | None
    link: str | None
    photo_url: str | None = Field(default=None, description="the first ready photo, if any")


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ContentType = Annotated[
    str, StringConstraints(max_length=100, pattern=r"^[a-z]+/[a-z0-9.+-]{1,80}$")
]


class AssetCreate(In):
    kind: AssetKind
    filename: FileName
    content_type: ContentType
    size: Annotated[int, Field(ge=1, le=10 * 1024**3)]
    sha256: Sha256 | None = None


class AssetPublic(Out):
    id: uuid.UUID
    product_id: uuid.UUID | None
    booth_id: uuid.UUID
    kind: AssetKind
    status: AssetStatus
    filename: str
    content_type: str
    size: int
    sha256: str | None
    url: str | None = Field(default=None, description="where a browser can GET the file")
    error_code: str | None = Field(
        default=None, description="why processing failed (status failed), a stable code"
    )


# --- uploads --------------------------------------------------------------------------------

UploadKind = Literal["model", "photo"]
UploadState = Literal["open", "complete", "expired", "finalized"]


class UploadDeclaration(In):
    """A large file announced before its bytes; finalize checks the bytes against it."""

    kind: UploadKind
    filename: FileName
    content_type: ContentType = Field(
        description="sent by the browser with the presigned POST; the stored type is detected"
    )
    size: Annotated[int, Field(ge=1, le=10 * 1024**3, description="bytes, exactly")]
    sha256: Sha256


class UploadAccepted(BaseModel):
    asset: AssetPublic
    job_id: uuid.UUID | None = Field(
        description="the processing job (GET its progress); null when nothing runs: the same "
        "bytes failed before and the asset failed with that code"
    )


class UploadPublic(BaseModel):
    upload_id: uuid.UUID
    method: UploadMethod
    kind: AssetKind
    filename: str
    size: int
    offset: int = Field(description="bytes received so far (resumable); the next chunk's offset")
    chunk_size: int | None = Field(description="the largest chunk a PUT may carry (resumable)")
    state: UploadState
    expires_at: datetime
    asset_id: uuid.UUID | None


class PresignedUploadPublic(UploadPublic):
    url: str = Field(description="POST a multipart form here: `fields`, then the file as `file`")
    fields: dict[str, str]


# --- guides and tours -----------------------------------------------------------------------


class GuideCreate(In):
    user_id: uuid.UUID
    display_name: ShortName
    languages: list[Language] = Field(default_factory=list, max_length=10)
    bio: Description = ""


class GuideUpdate(In):
    display_name: ShortName | None = None
    languages: list[Language] | None = Field(default=None, max_length=10)
    bio: Description | None = None


class GuidePublic(Out):
    id: uuid.UUID
    user_id: uuid.UUID
    display_name: str
    languages: list[str]
    bio: str


class TourCreate(In):
    hall_id: uuid.UUID
    guide_id: uuid.UUID | None = Field(
        default=None, description="defaults to the calling guide; admins must give one"
    )
    title: Name
    language: Language = "en"
    starts_at: AwareDatetime
    duration_minutes: Annotated[int, Field(ge=5, le=480)] = 30
    capacity: Annotated[int, Field(ge=1, le=1000)] = 50
    route: list[uuid.UUID] = Field(default_factory=list, max_length=100)


class TourUpdate(In):
    title: Name | None = None
    language: Language | None = None
    starts_at: AwareDatetime | None = None
    duration_minutes: Annotated[int, Field(ge=5, le=480)] | None = None
    capacity: Annotated[int, Field(ge=1, le=1000)] | None = None
    route: list[uuid.UUID] | None = Field(default=None, max_length=100)
    status: TourStatus | None = None


class TourPublic(Out):
    id: uuid.UUID
    hall_id: uuid.UUID
    guide_id: uuid.UUID
    title: str
    language: str
    starts_at: datetime
    duration_minutes: int
    capacity: int
    route: list[uuid.UUID]
    status: TourStatus


class Facet(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    categories: list[Facet]
    countries: list[Facet]
