"""Telling the operator which account table this pod serves.

The operator calls a listener Connection Ready only when a Ready listener pod
has loaded a table that holds the Connection's account as configured
(planning/readiness.py). After every table it loads, the listener writes
`<pod name>: "<protocol> <digest>,..."` (one digest per shard) into the
namespace's state ConfigMap, the one object its role may patch besides
Connection statuses and events; on a clean stop it removes its line. Reports
go through one worker thread and only the latest counts, so a slow API server
never holds up a login.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from connectors.api.accounts import state_value

log = logging.getLogger(__name__)


class StateReporter:
    def __init__(self, namespace: str, pod: str, protocol: str, configmap: str,
                 api_client: Any) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.pod = pod
        self.protocol = protocol
        self.configmap = configmap
        self.core = client.CoreV1Api(api_client)
        self._latest: str | None = None
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="state-report", daemon=True)
        self._thread.start()

    def loaded(self, digests: list[str]) -> None:
        """The account table whose shards have these digests is now in force."""
        self._latest = state_value(self.protocol, digests)
        self._pending.set()

    def close(self) -> None:
        """Removes this pod's line: a pod that stops serves nothing."""
        self._stop.set()
        self._pending.set()
        self._thread.join(timeout=10)
        self._patch(None)

    def _work(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            self._pending.wait()
            self._pending.clear()
            if self._stop.is_set():
                return
            if self._patch(self._latest):
                delay = 1.0
            elif not self._stop.wait(delay):
                # The API may be down, or the ConfigMap gone until the operator
                # makes it again: retry, less and less often.
                delay = min(delay * 2, 60.0)
                self._pending.set()

    def _patch(self, value: str | None) -> bool:
        try:
            self.core.patch_namespaced_config_map(
                self.configmap, self.namespace, {"data": {self.pod: value}},
                _content_type="application/merge-patch+json", _request_timeout=10)
        except Exception as err:  # any failure: the next load or retry reports again
            log.warning("could not report the served account table: %s",
                        getattr(err, "status", None) or type(err).__name__)
            return False
        return True


def state_reporter_from_environment(protocol: str, api_client: Any | None) -> StateReporter | None:
    """A reporter when the pod runs in a cluster with its name and state
    ConfigMap given (the operator's Deployment sets both), else None."""
    namespace = os.environ.get("CONNECTORS_NAMESPACE")
    pod = os.environ.get("CONNECTORS_POD_NAME")
    configmap = os.environ.get("CONNECTORS_STATE_CONFIGMAP")
    if not (namespace and pod and configmap and api_client is not None):
        return None
    return StateReporter(namespace, pod, protocol, configmap, api_client)
