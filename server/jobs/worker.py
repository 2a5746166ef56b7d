"""A job worker process: ``python -m server.jobs.worker --handler package.module:function``.

It consumes the Redis queue with the named handler until SIGTERM or SIGINT, then stops
gracefully (running jobs get ``--stop-timeout`` seconds, then go back to the queue). The app's
own command (``python -m server worker``) calls :func:`server.jobs.run_worker` with the real
handler; this entry point runs any handler, which is what the tests and one-off tools need.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from server.jobs.queue import JobHandler
from server.jobs.saq_queue import RedisJobOptions, run_worker
from server.settings import get_settings

logger = logging.getLogger(__name__)


def load_handler(spec: str) -> JobHandler:
    """Import ``package.module:attribute`` and return it.

    Args:
        spec: the handler's import path, module and attribute separated by a colon.

    Returns:
        The callable found there.

    Raises:
        ValueError: ``spec`` has no colon, or names something that is not callable.
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--handler must look like package.module:function, not {spec!r}")
    handler = getattr(importlib.import_module(module_name), attribute)
    if not callable(handler):
        raise ValueError(f"{spec} is not callable")
    result: JobHandler = handler
    return result


def _parser() -> argparse.ArgumentParser:
    defaults = RedisJobOptions()
    parser = argparse.ArgumentParser(prog="python -m server.jobs.worker", description=__doc__)
    parser.add_argument("--handler", required=True, help="package.module:function")
    parser.add_argument("--redis-url", help="default: PAVILION_REDIS_URL")
    parser.add_argument("--queue", default=defaults.queue_name)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--heartbeat", type=int, default=defaults.heartbeat_seconds)
    parser.add_argument("--sweep", type=int, default=defaults.sweep_seconds)
    parser.add_argument("--job-timeout", type=int, default=defaults.job_timeout_seconds)
    parser.add_argument("--stop-timeout", type=int, default=defaults.stop_timeout_seconds)
    return parser


async def _serve(
    handler: JobHandler, redis_url: str, concurrency: int, options: RedisJobOptions
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_worker(handler, redis_url, concurrency=concurrency, stop_event=stop, options=options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker until SIGTERM/SIGINT.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 after a graceful stop, 2 for bad arguments.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redis_url = args.redis_url or get_settings().redis_url
    if not redis_url:
        logger.error("no Redis: pass --redis-url or set PAVILION_REDIS_URL")
        return 2
    try:
        handler = load_handler(args.handler)
        options = RedisJobOptions(
            queue_name=args.queue,
            heartbeat_seconds=args.heartbeat,
            sweep_seconds=args.sweep,
            job_timeout_seconds=args.job_timeout,
            stop_timeout_seconds=args.stop_timeout,
        )
    except (ValueError, ImportError, AttributeError) as exc:
        logger.error("%s", exc)
        return 2
    asyncio.run(_serve(handler, redis_url, args.concurrency, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
