"""`connectors validate --cluster`: what the files do not hold is looked up in the live
namespace, and the operator's rules run over both."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
API = "connectors.dev/v1alpha1"


@pytest.fixture
def live(crds: Cluster, namespace: str, tmp_path: Path) -> str:
    """A kubeconfig whose context points at a namespace holding examples 01 and 02
    (applied, no operator needed: --cluster reads specs) and nothing else."""
    for example in ("01-inbound-push-sftp-conversions.yaml", "02-inbound-pull-sftp-audiences.yaml"):
        crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / example))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(crds.kubeconfig).read_text())
    crds.kubectl("config", "set-context", "--current", f"--namespace={namespace}",
                 kubeconfig=str(kubeconfig))
    return str(kubeconfig)


def connection(name: str, ref: str, **spec: object) -> dict[str, object]:
    base = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Push", "credentialRef": {"name": ref}}
    return {"apiVersion": API, "kind": "Connection", "metadata": {"name": name},
            "spec": {**base, **spec}}


def validate(tmp_path: Path, kubeconfig: str, *documents: dict[str, object],
             options: tuple[str, ...] = ("--cluster",)) -> tuple[int, list[str], str]:
    path = tmp_path / "change.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    result = subprocess.run([sys.executable, "-m", "connectors", "validate", *options,
                             str(path)], env=env, capture_output=True, text=True, check=False,
                            timeout=60)
    return result.returncode, result.stdout.splitlines(), result.stderr


def test_a_credential_of_the_cluster_resolves_the_reference(live: str, tmp_path: Path) -> None:
    # FTP: another listener than acme-conversions' SFTP, so the one login serves both.
    document = connection("acme-clicks", "acme-sftp", method="FTP", filenamePattern="*.csv")
    code, out, err = validate(tmp_path, live, document, options=())
    assert code == 0
    assert "warning: Credential acme-sftp is in none of these files" in out[0]
    code, out, err = validate(tmp_path, live, document)
    assert (code, out, err) == (0, ["1 file, 1 resource: valid"], "")


def test_a_credential_in_neither_place_is_an_error(live: str, tmp_path: Path,
                                                   namespace: str) -> None:
    code, out, _ = validate(tmp_path, live, connection("acme-clicks", "nope"))
    assert code == 1
    assert out[0].endswith(f"spec.credentialRef.name: no Credential named nope in namespace "
                           f"{namespace}, neither in these files nor in the cluster: add it or "
                           "fix the name")


def test_a_live_credential_that_does_not_fit(live: str, tmp_path: Path) -> None:
    code, out, _ = validate(tmp_path, live, connection(
        "shandalear-catalog", "shandalear-pull", method="FTP", methodology="Pull",
        remote={"host": "ftp.shandalear.example", "folder": "/out"}))
    assert code == 1
    assert "Credential shandalear-pull is of type PublicKey, which only SFTP can use" in out[0]


def test_a_username_the_live_namespace_already_uses(live: str, tmp_path: Path) -> None:
    taker = {"apiVersion": API, "kind": "Credential", "metadata": {"name": "acme-too"},
             "spec": {"type": "Password", "username": "acme"}}
    code, out, _ = validate(tmp_path, live, taker, connection("aaa-clicks", "acme-too"))
    assert code == 1
    assert len(out) == 1
    # The cluster's Credential is older than anything these files would add.
    assert "Connection/aaa-clicks: spec.credentialRef.name: username acme is already the " \
           "login of Credential acme-sftp (Connection acme-conversions)" in out[0]
    # The same Credential again on the same listener needs a place of its own.
    code, out, _ = validate(tmp_path, live, connection("aaa-more", "acme-sftp"))
    assert code == 1
    assert "Connection/aaa-more: spec.credentialRef.name: Connection acme-conversions " \
           "already appears at / for login acme" in out[0]
    code, out, _ = validate(tmp_path, live, connection("aaa-more", "acme-sftp", folder="more"))
    assert (code, out) == (0, ["1 file, 1 resource: valid"])


def test_the_namespace_option_wins_over_the_context(live: str, tmp_path: Path,
                                                    crds: Cluster) -> None:
    elsewhere = f"elsewhere-{uuid.uuid4().hex[:8]}"
    crds.kubectl("create", "namespace", elsewhere)
    try:
        code, out, _ = validate(tmp_path, live,
                                connection("acme-clicks", "acme-sftp", method="FTP"),
                                options=("--cluster", "-n", elsewhere))
    finally:
        crds.kubectl("delete", "namespace", elsewhere, "--wait=false")
    assert code == 1
    assert f"no Credential named acme-sftp in namespace {elsewhere}," in out[0]


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "nowhere"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "users": [{"name": "x", "user": {"token": "t"}}]}))
    code, out, err = validate(tmp_path, str(kubeconfig), connection("acme-clicks", "acme-sftp"))
    assert (code, out) == (2, [])
    assert err.startswith("--cluster: cannot reach the cluster: ")
    assert len(err.splitlines()) == 1
