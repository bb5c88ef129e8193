"""`kubectl connectors submissions`: which pod of the processor runs `connectors
submissions`, with which arguments, and what its exit status was. Pure: from the
Pod objects and the exec API's status, no API calls."""

from __future__ import annotations

import json
from typing import Any

DEPLOYMENT = "connectors-processor"
"""The processor's Deployment: its pods mount the data volume, store and all, at /data."""
COMPONENT_LABEL = "app.kubernetes.io/component"
SELECTOR = f"{COMPONENT_LABEL}=processor"
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def state(pod: dict[str, Any]) -> str:
    """Why a pod can or cannot run the command: "serving" when it is Running,
    Ready and not being deleted; else what it is."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "being deleted"
    phase = str((pod.get("status") or {}).get("phase") or "Unknown")
    if phase != "Running":
        return phase
    return "serving" if _ready(pod) else "Running, not Ready"


def pick(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A serving pod of the processor, the same one each time (the first by name:
    they all read the one store); None when none serves."""
    serving = [pod for pod in pods if state(pod) == "serving"]
    return min(serving, key=lambda pod: str(pod["metadata"]["name"]), default=None)


def no_processor(namespace: str, pods: list[dict[str, Any]]) -> str:
    """The one-line error when no pod serves: where to look, and the pods there are."""
    seen = "; ".join(f"pod {pod['metadata']['name']} is {state(pod)}"
                     for pod in sorted(pods, key=lambda pod: str(pod["metadata"]["name"])))
    return (f"namespace {namespace} has no running processor to read the submission "
            f"history from{f' ({seen})' if seen else ''}: check it with kubectl get deploy "
            f"{DEPLOYMENT} -n {namespace}")


def container(pod: dict[str, Any]) -> str:
    """The container to exec in: the pod's default one (kubectl's annotation), else
    the one named processor, else the first."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    names = [str(c["name"]) for c in (pod.get("spec") or {}).get("containers") or []]
    chosen = annotations.get(DEFAULT_CONTAINER)
    if chosen in names:
        return str(chosen)
    return "processor" if "processor" in names else names[0]


def command(connection: str, *, failed: bool = False, submission_id: int | None = None,
            limit: int | None = None, json_output: bool = False) -> list[str]:
    """`connectors submissions` with the plugin's options; the data root is the
    pod's own (its CONNECTORS_DATA_ROOT, else /data)."""
    argv = ["connectors", "submissions", "--connection", connection]
    if failed:
        argv.append("--failed")
    if submission_id is not None:
        argv += ["--id", str(submission_id)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return [*argv, "-o", "json" if json_output else "table"]


def exit_status(error_channel: str) -> tuple[int | None, str]:
    """The command's exit status from what the exec API sends on its error channel
    (a v1 Status) once the command ends: (0, "") on success, (code, "") for a
    non-zero exit, (None, why) when the command did not run or the answer is
    missing (the connection dropped)."""
    if not error_channel.strip():
        return None, "the connection to the pod closed before the command finished"
    try:
        status = json.loads(error_channel)
    except ValueError:
        return None, error_channel.strip()
    if status.get("status") == "Success":
        return 0, ""
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
                return int(cause["message"]), ""
    return None, str(status.get("message") or error_channel.strip())
