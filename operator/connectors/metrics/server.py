"""Serving /metrics: `--metrics-port` (env CONNECTORS_METRICS_PORT; 0: off) and
`--metrics-address` for every command that serves metrics.

The listeners and the processor serve from a thread of their own
(prometheus_client's WSGI server). The operator serves from its asyncio loop
instead, beside its liveness endpoint (controller/main.py, `metrics_response`),
so that a stuck loop fails the probe as it did with kopf's own endpoint.
"""

from __future__ import annotations

import argparse
import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, start_http_server

from ..options import env_option
from ..ports import LISTENER_METRICS_PORT, OPERATOR_METRICS_PORT, PROCESSOR_METRICS_PORT

log = logging.getLogger(__name__)

__all__ = ["LISTENER_METRICS_PORT", "OPERATOR_METRICS_PORT", "PROCESSOR_METRICS_PORT",
           "MetricsServer", "add_metrics_options", "exposition", "serve_metrics"]


def add_metrics_options(parser: argparse._ActionsContainer, default_port: int) -> None:
    env_option(parser, "--metrics-port", env="CONNECTORS_METRICS_PORT", type=int,
               default=default_port,
               help="serve Prometheus metrics at /metrics on this port (0: none)")
    env_option(parser, "--metrics-address", env="CONNECTORS_METRICS_ADDRESS", default="0.0.0.0",
               help="address the metrics port binds")


class MetricsServer:
    """/metrics from a daemon thread, until close()."""

    def __init__(self, port: int, address: str = "0.0.0.0") -> None:
        self._server: WSGIServer
        self._server, _ = start_http_server(port, address)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(args: argparse.Namespace) -> MetricsServer | None:
    """The server the arguments ask for, or None with --metrics-port 0.
    Raises OSError when the port cannot be bound."""
    if not args.metrics_port:
        return None
    server = MetricsServer(args.metrics_port, args.metrics_address)
    log.info("metrics on http://%s:%d/metrics", args.metrics_address, server.port)
    return server


def exposition() -> tuple[bytes, str]:
    """The default registry in the text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
