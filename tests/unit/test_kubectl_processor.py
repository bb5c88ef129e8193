"""`kubectl connectors submissions`: the pod it picks, the command it runs there,
and the exit status it reads back (kubectl/processor.py, pure)."""

from __future__ import annotations

import json
from typing import Any

from connectors.kubectl import processor


def pod(name: str, phase: str = "Running", ready: bool = True, deleting: bool = False,
        containers: tuple[str, ...] = ("processor",),
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "partners",
                            "labels": {"app.kubernetes.io/component": "processor"},
                            "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = "2025-03-01T12:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": c} for c in containers]},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_only_a_running_ready_pod_not_being_deleted_is_picked() -> None:
    pending = pod("p-a", phase="Pending", ready=False)
    unready = pod("p-b", ready=False)
    leaving = pod("p-c", deleting=True)
    serving = pod("p-d")
    assert [processor.state(p) for p in (pending, unready, leaving, serving)] == [
        "Pending", "Running, not Ready", "being deleted", "serving"]
    assert processor.pick([pending, unready, leaving]) is None
    assert processor.pick([pending, serving, unready, leaving]) is serving
    # Several serving: the same one each time, whatever order the API lists them in.
    other = pod("p-b2")
    assert processor.pick([serving, other]) is other
    assert processor.pick([other, serving]) is other
    assert processor.pick([]) is None


def test_no_processor_says_where_to_look_and_what_pods_there_are() -> None:
    assert processor.no_processor("partners", []) == (
        "namespace partners has no running processor to read the submission history from: "
        "check it with kubectl get deploy connectors-processor -n partners")
    message = processor.no_processor("partners", [pod("p-b", ready=False),
                                                  pod("p-a", phase="Pending")])
    assert "(pod p-a is Pending; pod p-b is Running, not Ready)" in message
    assert message.endswith("kubectl get deploy connectors-processor -n partners")


def test_the_container_is_the_default_one_else_processor_else_the_first() -> None:
    assert processor.container(pod("p", containers=("sidecar", "main"), annotations={
        "kubectl.kubernetes.io/default-container": "main"})) == "main"
    assert processor.container(pod("p", containers=("sidecar", "processor"))) == "processor"
    assert processor.container(pod("p", containers=("only",))) == "only"
    # An annotation naming no container of the pod is ignored.
    assert processor.container(pod("p", containers=("a", "processor"), annotations={
        "kubectl.kubernetes.io/default-container": "gone"})) == "processor"


def test_the_command_in_the_pod_carries_the_options_given() -> None:
    assert processor.command("acme-conversions") == [
        "connectors", "submissions", "--connection", "acme-conversions", "-o", "table"]
    assert processor.command("acme-conversions", failed=True, submission_id=7, limit=5,
                             json_output=True) == [
        "connectors", "submissions", "--connection", "acme-conversions", "--failed",
        "--id", "7", "--limit", "5", "-o", "json"]


def test_the_exit_status_comes_from_the_status_on_the_error_channel() -> None:
    assert processor.exit_status('{"metadata":{},"status":"Success"}') == (0, "")
    non_zero = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                "message": "command terminated with non-zero exit code: exit status 2",
                "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}
    assert processor.exit_status(json.dumps(non_zero)) == (2, "")
    not_run = {"metadata": {}, "status": "Failure",
               "message": 'exec: "connectors": executable file not found in $PATH'}
    assert processor.exit_status(json.dumps(not_run)) == (
        None, 'exec: "connectors": executable file not found in $PATH')
    code, why = processor.exit_status("")
    assert code is None
    assert "closed before the command finished" in why
