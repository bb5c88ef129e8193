"""The FTP listener's loop runs scheduled calls when they are due, idle or not:
a landing's checks (Settlement) are scheduled calls, and its 226 waits for them."""

from __future__ import annotations

import threading
import time

from pyftpdlib.handlers import FTPHandler  # type: ignore[import-untyped]
from pyftpdlib.ioloop import IOLoop  # type: ignore[import-untyped]
from pyftpdlib.servers import FTPServer  # type: ignore[import-untyped]

from connectors.listeners.ftp.server import STOP_CHECK_SECONDS, serve_until


def test_an_idle_loop_runs_each_scheduled_call_when_it_is_due() -> None:
    server = FTPServer(("127.0.0.1", 0), FTPHandler, ioloop=IOLoop())
    stop = threading.Event()
    done = threading.Event()
    ran: list[float] = []

    def step() -> None:
        # A chain, as Settlement polls: each call schedules the next.
        ran.append(time.monotonic())
        if len(ran) < 5:
            server.ioloop.call_later(0.01, step)
        else:
            done.set()

    server.ioloop.call_later(0.01, step)
    start = time.monotonic()
    thread = threading.Thread(target=serve_until, args=(server, stop), daemon=True)
    thread.start()
    try:
        assert done.wait(10)
    finally:
        stop.set()
        thread.join(10)
    # With a fixed slice, an idle loop ran one call per slice: 5 x 0.5 s.
    assert ran[-1] - start < 2 * STOP_CHECK_SECONDS
