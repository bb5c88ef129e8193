"""The Argo CD health check (deploy/argocd/health.lua) and the Flux health
expressions (deploy/flux/kustomization.yaml), judged on live objects that the real
operator wrote status into: a Ready Connection and Credential, broken ones, a
suspended Connection, objects no operator has seen, and a spec edit the operator
has not acted on yet.

The Lua runs in a real Lua 5.1 interpreter (Argo CD's gopher-lua speaks 5.1), fed
the object the way Argo CD feeds it: decoded JSON in the global `obj`. The Flux
expressions run in cel-python, in the order the kustomize-controller tries them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from tests.conftest import Cluster, harvest
from tests.integration import operator_scenarios as scenarios
from tests.support.operator import OperatorProcess, wait_until_watching

REPO = Path(__file__).resolve().parents[2]
HEALTH = REPO / "deploy" / "argocd" / "health.lua"
HARNESS = REPO / "tests" / "support" / "argocd_health.lua"
FLUX = yaml.safe_load((REPO / "deploy" / "flux" / "kustomization.yaml").read_text())
BROKEN = """
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: broken-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Push
  credentialRef: {name: missing-login}
  filenamePattern: "clicks_*.csv"
---
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: missing-secret}
spec:
  type: Password
  secretRef: {name: nope}
"""


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(crds.kubeconfig, ["argo-*"], log).start()
    try:
        wait_until_watching(crds, "argo-")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def ns(crds: Cluster, operator: OperatorProcess) -> Iterator[str]:
    """A Ready Connection, a broken one, a broken Credential and a suspended Connection."""
    name = f"argo-{uuid.uuid4().hex[:8]}"
    crds.kubectl("create", "namespace", name)
    try:
        scenarios.apply(crds, name, REPO / "examples/01-inbound-push-sftp-conversions.yaml")
        scenarios.apply(crds, name, REPO / "examples/05-outbound-push-sftp-reports.yaml")
        suspended = (REPO / "examples/02-inbound-pull-sftp-audiences.yaml").read_text()
        scenarios.apply(crds, name, suspended.replace("  schedule:", "  suspend: true\n"
                                                      "  schedule:", 1))
        scenarios.apply(crds, name, BROKEN)
        scenarios.wait_configured(crds, name, "acme-conversions")
        scenarios.wait_condition(crds, name, "contoso-reports", "True")
        scenarios.wait_condition(crds, name, "shandalear-audiences", "False", "Suspended")
        scenarios.wait_condition(crds, name, "broken-clicks", "False", "CredentialNotFound")
        scenarios.wait_condition(crds, name, "missing-secret", "False", "SecretNotFound",
                                 plural="credentials")
        yield name
    finally:
        harvest(crds, name)
        crds.kubectl("delete", "namespace", name, "--wait=false", check=False)


def live(crds: Cluster, namespace: str, plural: str, name: str) -> dict[str, Any]:
    obj = scenarios.get(crds, namespace, plural, name)
    assert obj is not None, f"{plural}/{name}"
    return obj


def argocd(obj: dict[str, Any]) -> dict[str, str]:
    """The verdict of health.lua on `obj`, from a real Lua interpreter."""
    lua = shutil.which("lua5.1")
    if lua is None:
        pytest.fail("lua5.1 is missing: run hack/install-deps.sh (lua5.1, lua-dkjson)")
    result = subprocess.run([lua, str(HARNESS), str(HEALTH)], input=json.dumps(obj),
                            capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    verdict: dict[str, str] = json.loads(result.stdout)
    return verdict


def flux(obj: dict[str, Any]) -> str:
    """What the kustomize-controller makes of `obj` with the example's expressions: in
    progress while observedGeneration lags, else the first expression that holds of
    inProgress, failed and current; in progress when none does."""
    status = obj.get("status") or {}
    if "observedGeneration" in status and \
            status["observedGeneration"] != obj["metadata"]["generation"]:
        return "InProgress"
    exprs = next(e for e in FLUX["spec"]["healthCheckExprs"] if e["kind"] == obj["kind"])
    env = celpy.Environment()
    activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
    for key, verdict in (("inProgress", "InProgress"), ("failed", "Failed"),
                         ("current", "Current")):
        result = env.program(env.compile(exprs[key])).evaluate(activation)
        assert not isinstance(result, celpy.CELEvalError), (key, result)
        if bool(result):
            return verdict
    return "InProgress"


def test_ready_objects_are_healthy(crds: Cluster, ns: str) -> None:
    connection = live(crds, ns, "connections", "contoso-reports")
    ready = scenarios.condition(connection, "Ready")
    assert argocd(connection) == {"status": "Healthy", "message": ready["message"]}
    assert ready["message"] == "transfers run on schedule"
    credential = live(crds, ns, "credentials", "acme-sftp")
    assert argocd(credential)["status"] == "Healthy"
    assert (flux(connection), flux(credential)) == ("Current", "Current")


def test_a_listener_connection_without_a_listener_pod_is_degraded(crds: Cluster,
                                                                  ns: str) -> None:
    """No node here, so no listener pod: not Healthy, and the message says why."""
    connection = live(crds, ns, "connections", "acme-conversions")
    ready = scenarios.condition(connection, "Ready")
    assert ready["reason"] in scenarios.NO_NODE
    assert argocd(connection) == {"status": "Degraded",
                                  "message": f"{ready['reason']}: {ready['message']}"}
    assert flux(connection) == "Failed"


def test_broken_objects_are_degraded_with_the_condition_message(crds: Cluster, ns: str) -> None:
    connection = live(crds, ns, "connections", "broken-clicks")
    ready = scenarios.condition(connection, "Ready")
    assert argocd(connection) == {"status": "Degraded",
                                  "message": f"CredentialNotFound: {ready['message']}"}
    assert "Credential missing-login does not exist" in ready["message"]
    credential = live(crds, ns, "credentials", "missing-secret")
    verdict = argocd(credential)
    assert verdict["status"] == "Degraded"
    assert verdict["message"].startswith(f"SecretNotFound: Secret nope does not exist in "
                                         f"namespace {ns}")
    assert (flux(connection), flux(credential)) == ("Failed", "Failed")


def test_a_suspended_connection_is_suspended(crds: Cluster, ns: str) -> None:
    connection = live(crds, ns, "connections", "shandalear-audiences")
    assert connection["spec"]["suspend"] is True
    ready = scenarios.condition(connection, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert argocd(connection) == {"status": "Suspended", "message": ready["message"]}
    assert ready["message"] == ("spec.suspend is true: no transfer is scheduled; set it to "
                                "false to resume")
    assert flux(connection) == "Current"
    # An object stored before the operator said Suspended: spec.suspend alone is enough.
    older = json.loads(json.dumps(connection))
    for c in older["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status="True", reason="Ready", message="transfers are suspended")
    workload = scenarios.condition(older, "WorkloadReady")
    assert argocd(older) == {"status": "Suspended",
                             "message": f"spec.suspend is true: {workload['message']}"}


def test_objects_no_operator_has_seen_are_progressing(crds: Cluster, namespace: str) -> None:
    # `namespace` is not one the test operator watches: nothing writes a status here.
    scenarios.apply(crds, namespace, REPO / "examples/01-inbound-push-sftp-conversions.yaml")
    for plural, name in (("connections", "acme-conversions"), ("credentials", "acme-sftp")):
        obj = live(crds, namespace, plural, name)
        assert "status" not in obj
        assert argocd(obj) == {"status": "Progressing",
                               "message": "waiting for the operator to act on generation 1"}


def test_ready_unknown_is_progressing(crds: Cluster, ns: str) -> None:
    # Ready is Unknown while a Credential is being made; that moment passes too fast to
    # catch, so the live Ready object is turned Unknown the way the operator writes it.
    connection = json.loads(json.dumps(live(crds, ns, "connections", "acme-conversions")))
    for c in connection["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status="Unknown", reason="CredentialPending",
                     message="Credential acme-sftp has not been reconciled yet")
    assert argocd(connection) == {"status": "Progressing",
                                  "message": "Credential acme-sftp has not been reconciled yet"}
    assert flux(connection) == "InProgress"


def test_a_spec_edit_not_yet_acted_on_is_progressing(crds: Cluster, ns: str,
                                                     operator: OperatorProcess) -> None:
    """Last in this module: it stops the operator, so that the edit stays unobserved."""
    operator.stop()
    crds.kubectl("patch", "connection", "contoso-reports", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"displayName": "Contoso, edited"}}))
    connection = live(crds, ns, "connections", "contoso-reports")
    assert connection["status"]["observedGeneration"] < connection["metadata"]["generation"]
    assert scenarios.condition(connection, "Ready")["status"] == "True"
    assert argocd(connection) == {
        "status": "Progressing",
        "message": f"waiting for the operator to act on generation "
                   f"{connection['metadata']['generation']}"}
    assert flux(connection) == "InProgress"


def test_argocd_cm_carries_the_script_for_both_kinds() -> None:
    data = yaml.safe_load((REPO / "deploy" / "argocd" / "argocd-cm.yaml").read_text())["data"]
    script = HEALTH.read_text()
    assert data == {"resource.customizations.health.connectors.dev_Connection": script,
                    "resource.customizations.health.connectors.dev_Credential": script}


def test_flux_example_checks_both_kinds_of_the_api() -> None:
    exprs = FLUX["spec"]["healthCheckExprs"]
    assert {(e["apiVersion"], e["kind"]) for e in exprs} == {
        ("connectors.dev/v1alpha1", "Connection"), ("connectors.dev/v1alpha1", "Credential")}
    assert all({"inProgress", "failed", "current"} <= set(e) for e in exprs)
