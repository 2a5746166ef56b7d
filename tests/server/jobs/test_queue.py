"""The port's own pieces: RetryLater and the request checks the adapters share."""

from __future__ import annotations

import pytest

from server.jobs import RetryLater
from server.jobs.queue import check_request


def test_retry_later_keeps_its_delay_and_reason_and_treats_a_negative_delay_as_now() -> None:
    later = RetryLater(2.5, "s3 timeout")
    now = RetryLater(-1)

    assert (later.delay_seconds, later.reason) == (2.5, "s3 timeout")
    assert now.delay_seconds == 0.0


@pytest.mark.parametrize("delay", [float("nan"), float("inf")])
def test_retry_later_refuses_an_undefined_or_endless_delay(delay: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        RetryLater(delay)


def test_a_valid_request_comes_back_as_a_float_delay() -> None:
    assert check_request("job-1", 3) == 3.0
