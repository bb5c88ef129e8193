"""`kubectl connectors trigger`: a transfer of a platform-initiated Connection, now.

The Job is made from the Connection's CronJob as `kubectl create job --from=cronjob/...`
makes it: the jobTemplate's labels, annotations and spec, the CronJob as its
controlling owner, and `cronjob.kubernetes.io/instantiate: manual`. Its labels are
the transfer's, so the operator records its outcome in status.lastTransfer like a
scheduled run's. Pure: objects in, objects and words out; cluster.py does the calls.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..api.connection import is_platform_initiated
from ..controller.reconcilers.job_results import parse_summary
from ..planning.jobs import transfer_name

INSTANTIATE = "cronjob.kubernetes.io/instantiate"
JOB_NAME_LIMIT = 63
LAST_TRANSFER_FIELDS = ("time", "files", "bytes", "skipped", "failed", "outcome", "message",
                        "durationSeconds")
# Who connects to whom, for the refusal of a Connection the partner starts.
PARTNER_STARTS = {
    "Inbound": "the partner starts each transfer by uploading to the platform's listener",
    "Outbound": "the partner starts each transfer by downloading from the platform's listener",
}


def cronjob_name(connection: str) -> str:
    return transfer_name(connection)


def refusal(connection: dict[str, Any]) -> str | None:
    """Why this Connection has no transfer to run now, or None when it has."""
    meta = connection["metadata"]
    spec = connection.get("spec") or {}
    name, namespace = meta["name"], meta["namespace"]
    direction, methodology = str(spec.get("direction")), str(spec.get("methodology"))
    if not is_platform_initiated(direction, methodology):
        how = PARTNER_STARTS.get(direction, "the partner starts each transfer")
        email = " (email: by sending to its address)" if spec.get("method") == "Email" else ""
        return (f"Connection {name} is {direction} {methodology}: {how}{email}, so there is "
                f"nothing for the platform to trigger; kubectl connectors handoff {name} -n "
                f"{namespace} shows the partner where to connect")
    if spec.get("suspend"):
        return (f"Connection {name} is suspended (spec.suspend: true), so its transfers do not "
                f"run; resume it first: kubectl patch connection {name} -n {namespace} "
                """--type=merge -p '{"spec":{"suspend":false}}'""")
    return None


def no_cronjob(connection: dict[str, Any]) -> str:
    """The words for a platform-initiated Connection whose CronJob is not there (yet)."""
    meta = connection["metadata"]
    ready = next((c for c in (connection.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    state = (f"Ready is {ready.get('status')} ({ready.get('reason')}): {ready.get('message')}"
             if ready else "the operator has not reported on it yet")
    return (f"Connection {meta['name']} has no CronJob {cronjob_name(meta['name'])}, from "
            f"which a transfer is made: the operator makes it once the Connection is valid; "
            f"{state}")


def finished(job: dict[str, Any]) -> str | None:
    """"Complete" or "Failed" once the Job has finished; None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def running(jobs: list[dict[str, Any]]) -> list[str]:
    """The names of the Jobs that have not finished, oldest first."""
    unfinished = [job for job in jobs if finished(job) is None
                  and not job["metadata"].get("deletionTimestamp")]
    unfinished.sort(key=lambda job: str(job["metadata"].get("creationTimestamp", "")))
    return [str(job["metadata"]["name"]) for job in unfinished]


def job_name(cronjob: str, now: datetime.datetime) -> str:
    """`<cronjob>-manual-<UTC time to the second>`, shortened with a stable hash of
    the CronJob's name to fit the 63 characters of a Job's name (its pods carry it
    in a label)."""
    suffix = f"-manual-{now.astimezone(datetime.UTC):%Y%m%d%H%M%S}"
    if len(cronjob) + len(suffix) <= JOB_NAME_LIMIT:
        return cronjob + suffix
    digest = hashlib.sha256(cronjob.encode()).hexdigest()[:8]
    keep = JOB_NAME_LIMIT - len(suffix) - len(digest) - 1
    return f"{cronjob[:keep].rstrip('-')}-{digest}{suffix}"


def manual_job(cronjob: dict[str, Any], now: datetime.datetime) -> dict[str, Any]:
    """The Job `kubectl create job --from=cronjob/NAME` would make, named for `now`."""
    meta = cronjob["metadata"]
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(str(meta["name"]), now),
            "namespace": meta["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": {**(template_meta.get("annotations") or {}), INSTANTIATE: "manual"},
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": template.get("spec") or {},
    }


@dataclass
class Outcome:
    """How a triggered transfer went, as the plugin reports it."""

    connection: str
    namespace: str
    job: str
    followed: bool = True
    job_state: str | None = None
    """Complete or Failed (the Job's condition); None while it runs, or unfollowed."""
    last_transfer: dict[str, Any] = field(default_factory=dict)
    """The summary of the run, in status.lastTransfer's fields."""
    source: str = ""
    """Where the summary came from: the Connection's status, or the pod's termination
    message when the operator had not copied it yet."""

    @property
    def succeeded(self) -> bool:
        if not self.followed:
            return True
        if self.last_transfer.get("outcome"):
            return bool(self.last_transfer["outcome"] == "Succeeded")
        return self.job_state == "Complete"


def recorded(connection: dict[str, Any], job: str) -> dict[str, Any] | None:
    """The Connection's lastTransfer when it is this Job's (the operator copied it)."""
    last = (connection.get("status") or {}).get("lastTransfer") or {}
    return dict(last) if last.get("source") == f"job/{job}" else None


def from_pods(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's summary from the termination message of the Job's last pod that
    wrote one, as the operator reads it."""
    found: dict[str, Any] | None = None
    for pod in sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", ""))):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if message:
                found = parse_summary(message) or found
    if found is None:
        return None
    return {k: found[k] for k in LAST_TRANSFER_FIELDS if k in found}


def _count(value: Any, word: str) -> str:
    return f"{value} {word}{'' if value == 1 else 's'}"


def render_text(outcome: Outcome) -> str:
    where = f"-n {outcome.namespace}"
    if not outcome.followed:
        return "\n".join([
            f"Job:       {outcome.job} (created; not followed)",
            f"Follow:    kubectl get job {outcome.job} {where} --watch",
            f"Outcome:   kubectl connectors status {where} (LAST TRANSFER, once it finished)",
        ])
    last = outcome.last_transfer
    state = last.get("outcome") or ("Succeeded" if outcome.job_state == "Complete" else "Failed")
    lines = [f"Job:       {outcome.job}", f"Outcome:   {state}"]
    if "files" in last:
        lines.append(f"Files:     {_count(last.get('files', 0), 'file')}, "
                     f"{_count(last.get('bytes', 0), 'byte')}; skipped "
                     f"{last.get('skipped', 0)}, failed {last.get('failed', 0)}")
    if "durationSeconds" in last:
        lines.append(f"Duration:  {last['durationSeconds']:g} s")
    if last.get("time"):
        lines.append(f"Finished:  {last['time']}")
    if last.get("message"):
        lines.append(f"Message:   {last['message']}")
    if not last:
        lines.append(f"Message:   the job left no summary: see kubectl logs job/{outcome.job} "
                     f"{where}")
    elif state != "Succeeded":
        lines.append(f"Logs:      kubectl logs job/{outcome.job} {where}")
    return "\n".join(lines)


def render_json(outcome: Outcome) -> str:
    return json.dumps({
        "connection": outcome.connection,
        "namespace": outcome.namespace,
        "job": outcome.job,
        "followed": outcome.followed,
        "jobState": outcome.job_state,
        "succeeded": outcome.succeeded if outcome.followed else None,
        "lastTransfer": outcome.last_transfer or None,
        "source": outcome.source or None,
    }, indent=2)
