"""The typed control messages of the tour protocol, version 1 (docs/protocol.md).

Client messages are parsed once, by one pydantic ``TypeAdapter`` over a union discriminated by
``type``; anything that does not fit is an :class:`InvalidMessage` the room answers with an
``error``. Server messages are plain dicts built by the room: they are encoded once per broadcast.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SIGNAL_CHARS = 16 * 1024
REACTIONS = frozenset({"👍", "👏", "❤️", "😂", "😮", "❓"})

# Close codes (docs/protocol.md "Limits and close codes").
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_VERSION = 4000
CLOSE_SLOW = 4008
CLOSE_UNAUTHORISED = 4401
CLOSE_KICKED = 4403
CLOSE_NO_HALL = 4404
CLOSE_HALL_FULL = 4409
CLOSE_RATE_LIMITED = 4429

Ref = Annotated[str, StringConstraints(max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
AvatarId = Annotated[int, Field(ge=0, le=2**32 - 1)]


class InvalidMessage(ValueError):
    """A control message that is not JSON, not an object or does not match its type's schema."""

    def __init__(self, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_SIGNAL_CHARS)
    ref: Ref | None = None


class Hello(_Message):
    type: Literal["hello"]
    v: int
    ticket: Annotated[str, StringConstraints(max_length=4096)] | None = None
    resume: Annotated[str, StringConstraints(max_length=128)] | None = None
    last_seq: dict[uuid.UUID, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class Ping(_Message):
    type: Literal["ping"]
    t: float = 0.0


class Chat(_Message):
    type: Literal["chat"]
    scope: Literal["hall", "tour"] = "hall"
    text: Text


class React(_Message):
    type: Literal["react"]
    emoji: str


class HotspotOpen(_Message):
    type: Literal["hotspot.open"]
    product_id: uuid.UUID


class TourCreate(_Message):
    type: Literal["tour.create"]
    title: Title
    capacity: Annotated[int, Field(ge=1, le=500)] | None = None


class TourStart(_Message):
    type: Literal["tour.start"]
    tour_id: uuid.UUID


class TourJoin(_Message):
    type: Literal["tour.join"]
    tour_id: uuid.UUID


class TourLeave(_Message):
    type: Literal["tour.leave"]


class TourEnd(_Message):
    type: Literal["tour.end"]


class TourFollow(_Message):
    type: Literal["tour.follow"]
    on: bool


class TourSummon(_Message):
    type: Literal["tour.summon"]


class TourGoto(_Message):
    type: Literal["tour.goto"]
    booth_id: uuid.UUID


class TourPoint(_Message):
    type: Literal["tour.point"]
    product_id: uuid.UUID | None


class TourSpotlight(_Message):
    type: Literal["tour.spotlight"]
    member: AvatarId | None


class TourMute(_Message):
    type: Literal["tour.mute"]
    member: AvatarId
    muted: bool


class TourKick(_Message):
    type: Literal["tour.kick"]
    member: AvatarId


class Hand(_Message):
    type: Literal["hand"]
    raised: bool


class TourSync(_Message):
    type: Literal["tour.sync"]
    tour_id: uuid.UUID


class RtcSignal(_Message):
    type: Literal["rtc.signal"]
    to: AvatarId
    kind: Literal["offer", "answer", "ice"]
    data: Annotated[str, StringConstraints(max_length=MAX_SIGNAL_CHARS)]


ClientMessage = Annotated[
    Hello
    | Ping
    | Chat
    | React
    | HotspotOpen
    | TourCreate
    | TourStart
    | TourJoin
    | TourLeave
    | TourEnd
    | TourFollow
    | TourSummon
    | TourGoto
    | TourPoint
    | TourSpotlight
    | TourMute
    | TourKick
    | Hand
    | TourSync
    | RtcSignal,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_object: TypeAdapter[dict[str, object]] = TypeAdapter(dict[str, object])

# Commands only a tour's guide may give.
GUIDE_COMMANDS = (
    TourEnd,
    TourFollow,
    TourSummon,
    TourGoto,
    TourPoint,
    TourSpotlight,
    TourMute,
    TourKick,
)


def parse(text: str | bytes) -> ClientMessage:
    """The typed message in ``text``.

    Raises:
        InvalidMessage: not JSON, not an object, an unknown ``type`` or fields that do not fit;
            ``ref`` is kept when the object had a usable one, so the error can answer it.
    """
    try:
        return _adapter.validate_json(text)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc), _ref_of(text)) from None


def parse_op(value: object) -> ClientMessage:
    """A message that was parsed once already, carried in an op between nodes (trusted)."""
    return _adapter.validate_python(value)


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}"[:200]


def _ref_of(text: str | bytes) -> str | None:
    try:
        value = _object.validate_json(text)
    except ValidationError:
        return None
    ref = value.get("ref")
    return ref if isinstance(ref, str) and len(ref) <= 64 else None
