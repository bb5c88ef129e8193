"""The operator's HTTP endpoints, served from its own asyncio loop: /metrics,
and the liveness path when it shares the metrics port (the chart's 8080).

Served from the loop that runs kopf and the work queues, as kopf's own
liveness endpoint is: a loop that is stuck answers neither, and the kubelet
restarts the pod. kopf still serves the liveness endpoint itself when it is on
another port, or when metrics are off (--metrics-port 0).
"""

from __future__ import annotations

import logging
import urllib.parse

from aiohttp import web

from ..metrics.server import exposition

log = logging.getLogger(__name__)


def shared_liveness_path(liveness: str | None, metrics_port: int) -> str | None:
    """The path of the liveness endpoint URL when it is on the metrics port."""
    if not liveness or not metrics_port:
        return None
    parts = urllib.parse.urlsplit(liveness)
    if parts.scheme != "http" or (parts.port or 80) != metrics_port:
        return None
    return parts.path or "/"


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _alive(request: web.Request) -> web.Response:
    # What kopf's endpoint answers with no probe handlers registered: an
    # empty object, from a loop that is running.
    return web.json_response({})


class Endpoints:
    def __init__(self, address: str, port: int, liveness_path: str | None = None) -> None:
        self.address = address
        self.port = port
        self.liveness_path = liveness_path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", _metrics)
        if self.liveness_path is not None and self.liveness_path != "/metrics":
            app.router.add_get(self.liveness_path, _alive)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port)
        await site.start()
        log.info("metrics on http://%s:%d/metrics%s", self.address, self.port,
                 f", liveness on {self.liveness_path}" if self.liveness_path else "")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
