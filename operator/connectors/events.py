"""Events on a Connection, aggregated the way kubectl shows them.

A repeat of the same reason on the same Connection within AGGREGATE_SECONDS
updates the existing Event's count, time and message instead of adding a line,
so a flood (refused uploads, rejected files) stays one line with a count.
Used by the listeners and the processor; the operator posts its own through
kopf.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Literal

from .api.common import GROUP, VERSION
from .clock import now_rfc3339

AGGREGATE_SECONDS = 600.0
EventType = Literal["Normal", "Warning"]


class ConnectionEvents:
    PLURAL = "connections"

    def __init__(self, namespace: str, api_client: Any, component: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.component = component
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._clock = clock
        # (connection, reason) -> (event name, count, when it was first posted)
        self._events: dict[tuple[str, str], tuple[str, int, float]] = {}

    def post(self, connection: str, type_: EventType, reason: str, message: str,
             body: dict[str, Any] | None = None) -> None:
        """`body`: the Connection as last read, if at hand; it is read only when
        a new Event needs its uid."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        key = (connection, reason)
        now = now_rfc3339()
        message = message[:1024]
        known = self._events.get(key)
        if known is not None and self._clock() - known[2] < AGGREGATE_SECONDS:
            name, count, first = known
            try:
                self.core.patch_namespaced_event(
                    name, self.namespace,
                    {"count": count + 1, "lastTimestamp": now, "message": message},
                    _request_timeout=10)
                self._events[key] = (name, count + 1, first)
                return
            except ApiException as err:
                if err.status != 404:
                    raise
        if body is None:
            found: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, self.PLURAL, connection, _request_timeout=10)
            body = found if isinstance(found, dict) else {}
        metadata = body.get("metadata", {})
        event = client.CoreV1Event.from_dict({
            "metadata": {"generateName": f"{connection}.", "namespace": self.namespace},
            # The uid lets `kubectl describe connection` find the Event.
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Connection",
                "name": connection, "namespace": self.namespace, "uid": metadata.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })
        assert event is not None
        created: Any = self.core.create_namespaced_event(self.namespace, event,
                                                         _request_timeout=10)
        self._events[key] = (created.metadata.name, 1, self._clock())

    def patch_status(self, connection: str, status: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the Connection's status; returns the Connection."""
        result: Any = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, self.PLURAL, connection, {"status": status},
            _content_type="application/merge-patch+json", _request_timeout=10)
        return result if isinstance(result, dict) else {}


def kubernetes_api_client() -> Any | None:
    """An ApiClient from the in-cluster service account or KUBECONFIG, or None."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        if not os.environ.get("KUBECONFIG") and not os.path.exists(
            os.path.expanduser("~/.kube/config")
        ):
            return None
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError):
            return None
    return client.ApiClient()
