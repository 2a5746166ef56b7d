"""The bounded mailbox between publishers (any thread) and one subscriber's event loop."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from server.pubsub.buffer import Mailbox
from tests.server.pubsub.helpers import run


def test_a_full_mailbox_drops_its_oldest_message_counts_it_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    drops: list[int] = []

    async def scenario() -> tuple[list[object], int]:
        mailbox = Mailbox(3, "hall:x", drops.append)
        for n in range(7):
            assert mailbox.push("hall:x", str(n))
        return [await mailbox.get() for _ in range(3)], mailbox.dropped

    with caplog.at_level(logging.WARNING, logger="server.pubsub.buffer"):
        kept, dropped = run(scenario())

    assert kept == [("hall:x", "4"), ("hall:x", "5"), ("hall:x", "6")]
    assert dropped == 4
    assert drops == [1, 1, 1, 1]
    assert len([r for r in caplog.records if "not keeping up" in r.message]) == 1


def test_a_push_from_another_thread_wakes_a_waiting_reader() -> None:
    async def scenario() -> object:
        mailbox = Mailbox(8, "t")
        reader = asyncio.create_task(mailbox.get())
        await asyncio.sleep(0.01)
        assert not reader.done()
        thread = threading.Thread(target=mailbox.push, args=("t", "from a thread"))
        thread.start()
        thread.join()
        return await asyncio.wait_for(reader, 2)

    assert run(scenario()) == ("t", "from a thread")


def test_closing_from_another_thread_wakes_a_waiting_reader_and_refuses_later_pushes() -> None:
    async def scenario() -> tuple[object, bool]:
        mailbox = Mailbox(8, "t")
        reader = asyncio.create_task(mailbox.get())
        await asyncio.sleep(0.01)
        assert not reader.done()
        closer = threading.Thread(target=mailbox.close)
        closer.start()
        closer.join()
        return await asyncio.wait_for(reader, 2), mailbox.push("t", "late")

    assert run(scenario()) == (None, False)


def test_a_closed_mailbox_returns_nothing_even_with_messages_queued() -> None:
    async def scenario() -> object:
        mailbox = Mailbox(8, "t")
        mailbox.push("t", "1")
        mailbox.close()
        return await mailbox.get()

    assert run(scenario()) is None


def test_a_push_into_a_mailbox_whose_loop_closed_is_refused() -> None:
    async def make() -> Mailbox:
        return Mailbox(8, "t")

    mailbox = asyncio.run(make())

    assert mailbox.push("t", "nobody reads this") is False
    assert mailbox.closed


def test_a_mailbox_holds_at_least_one_message() -> None:
    async def make() -> Mailbox:
        return Mailbox(0, "t")

    with pytest.raises(ValueError, match="at least one"):
        run(make())
