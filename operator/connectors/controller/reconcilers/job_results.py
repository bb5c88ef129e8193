"""Transfer results: a finished Job's summary becomes the Connection's status.lastTransfer.

The transfer job writes one JSON line as its container's termination message;
this copies it into the Connection's status, once per Job, and announces it.
"""

from __future__ import annotations

import json
from typing import Any

from ...clock import now_rfc3339
from ..caches import Caches
from ..kube import Kube


class JobResults:
    def __init__(self, kube: Kube, caches: Caches) -> None:
        self.kube = kube
        self.caches = caches

    def record_job(self, job: dict[str, Any], connection: str) -> None:
        """Copies a finished Job's summary into the Connection's status.lastTransfer."""
        meta = job["metadata"]
        namespace = meta["namespace"]
        body = self.caches.connections.get((namespace, connection))
        if body is None:
            return
        last = (body.get("status") or {}).get("lastTransfer") or {}
        if last.get("source") == f"job/{meta['name']}":
            return  # recorded before (a restart lists finished Jobs again)
        summary = self._job_summary(job)
        self.kube.patch_status("Connection", namespace, connection, {"lastTransfer": summary})
        if summary["outcome"] == "Succeeded":
            self.kube.event(body, "Normal", "TransferSucceeded",
                            f"Job {meta['name']}: {summary.get('files', 0)} file(s), "
                            f"{summary.get('bytes', 0)} bytes")
        else:
            self.kube.event(body, "Warning", "TransferFailed",
                            f"Job {meta['name']}: {summary.get('message') or 'failed'}")

    def _job_summary(self, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        failed = any(c.get("type") == "Failed" and c.get("status") == "True"
                     for c in (job.get("status") or {}).get("conditions") or [])
        summary: dict[str, Any] = {}
        pods = self.kube.list_in("Pod", [meta["namespace"]],
                                  f"batch.kubernetes.io/job-name={meta['name']}")
        for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                message = ((status.get("state") or {}).get("terminated") or {}).get("message")
                if message:
                    summary = parse_summary(message) or summary
        fields = ("time", "files", "bytes", "skipped", "failed", "outcome", "message",
                  "durationSeconds")
        result = {k: summary[k] for k in fields if k in summary}
        result.setdefault("time", now_rfc3339())
        result.setdefault("outcome", "Failed" if failed else "Succeeded")
        if not summary:
            result["message"] = f"no summary from the job: see kubectl logs job/{meta['name']}"
        result["source"] = f"job/{meta['name']}"
        return result



def parse_summary(message: str) -> dict[str, Any] | None:
    """The last line of a termination message that is a run's JSON summary."""
    for line in reversed(message.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "outcome" in data:
            return data
    return None
