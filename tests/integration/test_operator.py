"""The operator against the real control plane, run as a process with admin rights."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from connectors import pgp
from connectors.api.processing import Processed
from connectors.planning.credentials import certificate_facts
from tests.conftest import Cluster
from tests.integration import operator_scenarios as scenarios
from tests.support import secrets as secret_scan
from tests.support.openpgp import GpgCli
from tests.support.operator import OperatorProcess, wait_until_watching
from tests.support.secrets import assert_absent
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(crds.kubeconfig, ["op-*"], log).start()
    wait_until_watching(crds, "op-")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def ns(crds: Cluster, operator: OperatorProcess) -> Iterator[str]:
    """One namespace for the module: the scenarios build on each other, in order."""
    name = f"op-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(crds.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.__name__)
def test_scenario(crds: Cluster, ns: str, scenario: scenarios.Scenario) -> None:
    scenario(crds, ns)


def test_generated_password_survives_restart_and_rotates_on_demand(
    crds: Cluster, ns: str, operator: OperatorProcess
) -> None:
    scenarios.apply(crds, ns, scenarios.REPO / "examples/03-inbound-push-email-audiences.yaml")
    scenarios.wait_configured(crds, ns, "globex-audiences")
    before = scenarios.secret_value(crds, ns, "globex-smtp-credential", "password")
    operator.restart()
    # An edit of an unrelated field is a new generation: a reconcile, not a new password.
    crds.kubectl("patch", "credential", "globex-smtp", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"description": "edited"}}))
    eventually(lambda: (scenarios.get(crds, ns, "credentials", "globex-smtp") or {})
               .get("status", {}).get("observedGeneration") == 2, 60, "the edit to be seen")
    assert scenarios.secret_value(crds, ns, "globex-smtp-credential", "password") == before
    assert len(before) >= 32

    table_before = scenarios.account_table(crds, ns, "smtp")
    crds.kubectl("annotate", "credential", "globex-smtp", "-n", ns,
                 "connectors.dev/rotate=2026-11-27")
    eventually(lambda: scenarios.secret_value(crds, ns, "globex-smtp-credential", "password")
               != before, 60, "the password to rotate")
    # The Secret is replaced first, then the status says so: wait for the status.
    eventually(lambda: (scenarios.get(crds, ns, "credentials", "globex-smtp") or {})
               .get("status", {}).get("rotatedAt"), 60, "status.rotatedAt")
    eventually(lambda: scenarios.account_table(crds, ns, "smtp") != table_before, 60,
               "the listener's account table to pick up the new password")


def test_deleted_secret_is_recreated_with_a_warning(crds: Cluster, ns: str) -> None:
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: fragile}
spec: {type: Password}
""")
    scenarios.wait_condition(crds, ns, "fragile", "True", plural="credentials")
    first = scenarios.secret_value(crds, ns, "fragile-credential", "password")
    crds.kubectl("delete", "secret", "fragile-credential", "-n", ns, "--wait=true")
    eventually(lambda: scenarios.read(crds, "Secret", ns, "fragile-credential"), 60,
               "a new Secret")
    assert scenarios.secret_value(crds, ns, "fragile-credential", "password") != first
    events = client.CoreV1Api(crds.api_client()).list_namespaced_event(
        ns, field_selector="involvedObject.name=fragile")
    warnings = [e for e in events.items if e.type == "Warning" and e.reason == "SecretRecreated"]
    assert len(warnings) == 1
    assert "password" in warnings[0].message


def test_weak_public_key_is_refused_with_its_line(crds: Cluster, ns: str) -> None:
    # A weak key on purpose: the operator must refuse it.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    line = weak.public_bytes(serialization.Encoding.OpenSSH,
                             serialization.PublicFormat.OpenSSH).decode()
    good = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0j54elL+x+D3NK2WR3xXx "
            "partner")
    manifest = {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
                "metadata": {"name": "weak-key"},
                "spec": {"type": "PublicKey", "publicKey": f"{good}\n{line} old-laptop\n"}}
    scenarios.apply(crds, ns, json.dumps(manifest))
    refused = scenarios.wait_condition(crds, ns, "weak-key", "False", "InvalidPublicKey",
                                       plural="credentials")
    message = scenarios.condition(refused, "Ready")["message"]
    assert "line 2" in message
    assert "1024 bits" in message


def test_no_secret_value_reaches_logs_events_or_status(
    crds: Cluster, ns: str, operator: OperatorProcess
) -> None:
    secrets = client.CoreV1Api(crds.api_client()).list_namespaced_secret(ns).items
    values = [value for s in secrets if s.type in ("kubernetes.io/basic-auth",
                                                     "kubernetes.io/ssh-auth")
              for key, value in (s.data or {}).items() if key in ("password", "ssh-privatekey")]
    assert values, "the scenarios should have generated secrets"
    plain = [base64.b64decode(v).decode() for v in values]
    events = client.CoreV1Api(crds.api_client()).list_namespaced_event(ns).items
    haystack = operator.log() + json.dumps([e.message for e in events])
    for kind in ("connections", "credentials"):
        haystack += json.dumps(client.CustomObjectsApi(crds.api_client())
                               .list_namespaced_custom_object("connectors.dev", "v1alpha1",
                                                              ns, kind)["items"])
    for value in plain:
        needle = value.strip().splitlines()[1] if "PRIVATE KEY" in value else value
        assert_absent(needle, haystack, "the operator log, events or status")


def test_switching_who_starts_moves_the_workload(crds: Cluster, ns: str) -> None:
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: switch-login}
spec: {type: Password, username: switcher}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: switch-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Pull
  credentialRef: {name: switch-login}
  filenamePattern: "clicks_*.csv"
  remote: {host: ftp.partner.example, folder: /out}
""")
    scenarios.wait_condition(crds, ns, "switch-clicks", "True")
    assert scenarios.read(crds, "CronJob", ns, "transfer-switch-clicks") is not None
    crds.kubectl("patch", "connection", "switch-clicks", "-n", ns, "--type=merge", "-p",
                 json.dumps({"spec": {"methodology": "Push", "remote": None}}))
    eventually(lambda: scenarios.read(crds, "CronJob", ns, "transfer-switch-clicks") is None,
               60, "the CronJob to go once the partner starts transfers")

    def has_account() -> bool:
        table = scenarios.account_table(crds, ns, "ftp")
        return table is not None and "switcher" in table.by_username()
    eventually(has_account, 60, "an account on the FTP listener")

    def ready_as_listener() -> bool:
        # Ready was True before the switch too: wait for the status written after it.
        obj = scenarios.get(crds, ns, "connections", "switch-clicks") or {}
        status = obj.get("status") or {}
        # No node here: configured as a listener Connection, waiting for its pod.
        return (scenarios.condition(obj, "Ready").get("reason") in scenarios.NO_NODE
                and (status.get("endpoint") or {}).get("protocol") == "ftp")
    eventually(ready_as_listener, 60, "configured with the FTP listener's endpoint")


def test_each_rotation_posts_exactly_one_rotated_event(crds: Cluster, ns: str) -> None:
    """Rotations in quick succession, one while a spec edit is being reconciled: each
    is one new password and one Rotated event, never two."""
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: rotated-twice}
spec: {type: Password}
""")
    scenarios.wait_condition(crds, ns, "rotated-twice", "True", plural="credentials")
    passwords = {scenarios.secret_value(crds, ns, "rotated-twice-credential", "password")}
    for value, edit in (("first", False), ("second", True)):
        crds.kubectl("annotate", "--overwrite", "credential", "rotated-twice", "-n", ns,
                     f"connectors.dev/rotate={value}")
        if edit:
            crds.kubectl("patch", "credential", "rotated-twice", "-n", ns, "--type=merge",
                         "-p", json.dumps({"spec": {"description": value}}))

        def rotated_for(expected: str = value) -> bool:
            secret = scenarios.read(crds, "Secret", ns, "rotated-twice-credential")
            annotations = (secret.metadata.annotations or {}) if secret else {}
            return annotations.get("connectors.dev/rotated-for") == expected
        eventually(rotated_for, 60, f"the rotation {value}")
        passwords.add(scenarios.secret_value(crds, ns, "rotated-twice-credential", "password"))
    assert len(passwords) == 3
    # Room for a late duplicate (a reconcile queued meanwhile) to land before counting.
    eventually(lambda: (scenarios.get(crds, ns, "credentials", "rotated-twice") or {})
               .get("status", {}).get("observedGeneration") == 2, 60, "the edit to be seen")
    time.sleep(5)
    events = client.CoreV1Api(crds.api_client()).list_namespaced_event(
        ns, field_selector="involvedObject.name=rotated-twice").items
    rotated = [e for e in events if e.reason == "Rotated"]
    assert len(rotated) == 2, [(e.reason, e.message) for e in events]
    assert all(e.message == "rotated the generated credentials in Secret "
               "rotated-twice-credential" for e in rotated)


def test_ftp_and_smtp_listeners_get_one_certificate_made_once(crds: Cluster, ns: str) -> None:
    """FTP and SMTP never take a password in clear text, so their listeners
    always mount a certificate: the operator makes a self-signed one per
    namespace once and never replaces it."""
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: tls-login}
spec: {type: Password, username: tlsuser}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: tls-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Push
  credentialRef: {name: tls-login}
  filenamePattern: "clicks_*.csv"
""")
    eventually(lambda: scenarios.read(crds, "Secret", ns, "connectors-listener-tls") is not None,
               60, "the listener certificate Secret")
    first = scenarios.read(crds, "Secret", ns, "connectors-listener-tls")
    deployment = scenarios.read(crds, "Deployment", ns, "connectors-ftp")
    assert deployment is not None
    pod = deployment.spec.template.spec
    assert "connectors-listener-tls" in [v.secret.secret_name for v in pod.volumes if v.secret]
    env = {e.name: e.value for e in pod.containers[0].env}
    assert env["CONNECTORS_REQUIRE_TLS"] == "true"
    # Another reconcile (a spec edit) keeps the same certificate.
    crds.kubectl("patch", "connection", "tls-clicks", "-n", ns, "--type=merge", "-p",
                 json.dumps({"spec": {"displayName": "TLS clicks"}}))
    configured = scenarios.wait_configured(crds, ns, "tls-clicks")
    again = scenarios.read(crds, "Secret", ns, "connectors-listener-tls")
    # status.endpoint shows the certificate's fingerprint, for the partner to check.
    pem = base64.b64decode(again.data["tls.crt"]).decode()
    assert configured["status"]["endpoint"]["tlsCertificateFingerprint"] == \
        certificate_facts(pem).sha256
    assert again is not None
    assert first is not None
    assert again.metadata.uid == first.metadata.uid
    assert again.data == first.data


def test_plain_ftp_is_an_opt_in_with_a_warning(crds: Cluster, ns: str) -> None:
    """FTPS is required unless a Connection opts out; opting out is said in a
    False condition and a Warning event, and does not keep it from Ready."""
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: legacy-login}
spec: {type: Password, username: legacy}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: legacy-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Push
  credentialRef: {name: legacy-login}
  filenamePattern: "clicks_*.csv"
  ftp: {allowPlainFtp: true}
""")
    configured = scenarios.wait_configured(crds, ns, "legacy-clicks")
    encrypted = scenarios.condition(configured, "Encrypted")
    assert (encrypted["status"], encrypted["reason"]) == ("False", "PlainFtpAllowed")
    assert "allowPlainFtp" in encrypted["message"]
    eventually(lambda: [e for e in client.CoreV1Api(crds.api_client()).list_namespaced_event(
        ns, field_selector="involvedObject.name=legacy-clicks").items
        if e.reason == "PlainFtpAllowed" and e.type == "Warning"], 60, "the Warning event")
    def plain() -> list[bool]:
        # The namespace is shared with other tests: this Connection's account only.
        table = scenarios.account_table(crds, ns, "ftp")
        return [a.plain_ftp for a in (table.accounts if table else [])
                if a.connection == "legacy-clicks"]
    assert eventually(plain, 60, "the FTP account") == [True]

    crds.kubectl("patch", "connection", "legacy-clicks", "-n", ns, "--type=json", "-p",
                 json.dumps([{"op": "remove", "path": "/spec/ftp"}]))

    def required() -> bool:
        obj = scenarios.get(crds, ns, "connections", "legacy-clicks")
        return scenarios.condition(obj, "Encrypted").get("reason") == "FtpsRequired"
    eventually(required, 60, "Encrypted=True once the opt-in is removed")
    eventually(lambda: plain() == [False], 60, "the table to follow")


def test_inbound_connections_get_the_namespace_processor(crds: Cluster, ns: str) -> None:
    """Every Inbound Connection, listener or job, is in the processing table with
    its schema; the processor Deployment goes with the last one."""
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: proc-login}
spec: {type: Password, username: proc}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: proc-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: SFTP
  methodology: Push
  credentialRef: {name: proc-login}
  filenamePattern: "clicks_*.csv"
  submissions:
    schema:
      columns:
        - {name: ClickId, type: String, required: true}
        - {name: ClickDate, type: Date, format: "%Y-%m-%d"}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: proc-reports}
spec:
  direction: Outbound
  dataType: Reports
  method: SFTP
  methodology: Pull
  credentialRef: {name: proc-login}
  filenamePattern: "report_*.csv"
  folder: reports
""")

    def table() -> dict[str, Processed] | None:
        # The namespace is shared with other tests: look at this test's Connections.
        entries = scenarios.processing_table(crds, ns) or []
        mine = {e.connection: e for e in entries if e.connection.startswith("proc-")}
        return mine or None
    processing = eventually(table, 60, "the processing table")
    assert list(processing) == ["proc-clicks"]
    entry = processing["proc-clicks"]
    assert entry.data_type == "Clicks"
    assert entry.schema_ is not None
    assert entry.schema_.names == ("ClickId", "ClickDate")
    deployment = scenarios.read(crds, "Deployment", ns, "connectors-processor")
    assert deployment is not None
    pod = deployment.spec.template.spec
    assert pod.containers[0].args == ["process"]
    assert "connectors-data" in [v.persistent_volume_claim.claim_name for v in pod.volumes
                                 if v.persistent_volume_claim]
    # Owned by a sample of the namespace's Inbound Connections (planning/owners.py).
    owners = [o.name for o in deployment.metadata.owner_references]
    inbound = {e.connection for e in scenarios.processing_table(crds, ns) or []}
    assert 0 < len(owners) <= 16
    assert set(owners) <= inbound
    assert "proc-reports" not in owners

    crds.kubectl("delete", "connection", "proc-clicks", "-n", ns)
    eventually(lambda: table() is None, 60, "proc-clicks to leave the processing table")


def test_a_namespace_with_only_transfer_jobs_gets_its_data_volume(
        crds: Cluster, operator: OperatorProcess) -> None:
    """A transfer Job's pod mounts the namespace's data volume claim: with no
    listener in the namespace, nothing made it, and the pod stayed Pending."""
    namespace = f"op-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(crds.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        scenarios.apply(crds, namespace, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: pull-login}
spec: {type: Password, username: puller}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: pull-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Pull
  credentialRef: {name: pull-login}
  filenamePattern: "clicks_*.csv"
  remote: {host: ftp.partner.example, folder: /out}
""")
        scenarios.wait_condition(crds, namespace, "pull-clicks", "True")

        def claim_exists() -> bool:
            claims = core.list_namespaced_persistent_volume_claim(namespace).items
            return [c.metadata.name for c in claims] == ["connectors-data"]
        eventually(claim_exists, 60, "the data volume claim")
        # What the job lands is checked too: the namespace gets its processor at once.
        eventually(lambda: scenarios.read(crds, "Deployment", namespace,
                                          "connectors-processor") is not None,
                   30, "the processor of a namespace with only a transfer job")
    finally:
        core.delete_namespace(namespace)


def test_pgp_decrypt_with_reaches_the_processor_and_a_misfit_is_said(
        crds: Cluster, ns: str) -> None:
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: sealed-pgp}
spec: {type: PGPKey}
---
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: sealed-login}
spec: {type: Password, username: sealed}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: sealed-conversions}
spec:
  direction: Inbound
  dataType: Conversions
  method: SFTP
  methodology: Push
  credentialRef: {name: sealed-login}
  filenamePattern: "conversions_*.csv.pgp"
  pgp: {decryptWith: {name: sealed-pgp}}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: sealed-wrong}
spec:
  direction: Inbound
  dataType: Clicks
  method: SFTP
  methodology: Push
  credentialRef: {name: sealed-login}
  filenamePattern: "clicks_*.csv.pgp"
  folder: clicks
  pgp: {decryptWith: {name: sealed-login}}
""")
    scenarios.wait_configured(crds, ns, "sealed-conversions")

    def entry() -> Processed | None:
        entries = scenarios.processing_table(crds, ns) or []
        mine = [e for e in entries if e.connection == "sealed-conversions" and e.decrypt_with]
        return mine[0] if mine else None
    assert eventually(entry, 60, "the decryption key in the table").decrypt_with == (
        "sealed-pgp-credential")
    deployment = scenarios.read(crds, "Deployment", ns, "connectors-processor")
    mounted = [v.secret.secret_name for v in deployment.spec.template.spec.volumes if v.secret]
    assert "sealed-pgp-credential" in mounted

    wrong = scenarios.wait_condition(crds, ns, "sealed-wrong", "False")
    credential = scenarios.condition(wrong, "CredentialReady")
    assert (credential["status"], credential["reason"]) == ("False", "PgpCredentialMismatch")
    assert "PGPKey" in credential["message"]


def test_a_pgpkey_gets_a_key_pair_that_decrypts_what_the_partner_encrypts(
    crds: Cluster, ns: str, tmp_path: Path
) -> None:
    """The operator generates the platform's OpenPGP key pair into the Secret; the
    partner encrypts to status.publicKey with their own gpg; the Secret's private
    key decrypts it."""
    scenarios.apply(crds, ns, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: acme-pgp}
spec: {type: PGPKey, description: "Acme encrypts its files to this key"}
""")
    body = scenarios.wait_condition(crds, ns, "acme-pgp", "True", "KeyPairGenerated",
                                    plural="credentials")
    status = body["status"]
    public = status["publicKey"]
    assert public.startswith(pgp.PUBLIC_BEGIN)
    assert public.rstrip().endswith(pgp.PUBLIC_END)
    assert re.fullmatch(r"[0-9A-F]{40}", status["fingerprints"][0])
    assert pgp.fingerprint_of(public) == status["fingerprints"][0]
    assert "username" not in status or status["username"] is None
    secret = scenarios.read(crds, "Secret", ns, status["secretName"])
    assert secret.type == "Opaque"
    assert secret.metadata.owner_references[0].kind == "Credential"
    assert sorted(secret.data) == ["pgp-private-key.asc", "pgp-public-key.asc"]
    private = scenarios.secret_value(crds, ns, status["secretName"], "pgp-private-key.asc")
    secret_scan.remember(private)
    assert scenarios.secret_value(crds, ns, status["secretName"], "pgp-public-key.asc") == public

    partner = GpgCli(tmp_path / "partner")
    (tmp_path / "platform.asc").write_text(public)
    (tmp_path / "conversions.csv").write_bytes(b"id,amount\n" + b"1,2\n" * 100_000)
    partner.run("--encrypt", "--recipient-file", str(tmp_path / "platform.asc"), "--output",
                str(tmp_path / "conversions.csv.pgp"), str(tmp_path / "conversions.csv"))
    pgp.decrypt_file(tmp_path / "conversions.csv.pgp", tmp_path / "decrypted.csv", private)
    assert (tmp_path / "decrypted.csv").read_bytes() == (tmp_path / "conversions.csv").read_bytes()

    # Reconciles later (an edit, the resync) keep the pair.
    crds.kubectl("patch", "credential", "acme-pgp", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"description": "edited"}}))
    eventually(lambda: (scenarios.get(crds, ns, "credentials", "acme-pgp") or {})
               .get("status", {}).get("observedGeneration") == 2, 60, "the edit to be seen")
    assert scenarios.secret_value(crds, ns, status["secretName"], "pgp-private-key.asc") == private
    events = client.CoreV1Api(crds.api_client()).list_namespaced_event(
        ns, field_selector="involvedObject.name=acme-pgp").items
    for event in events:
        for line in private.splitlines()[2:-2]:
            assert_absent(line, event.message or "", "an event of the PGPKey Credential")


def test_a_partner_pgp_key_is_accepted_with_its_fingerprint_or_refused_in_words(
    crds: Cluster, ns: str, tmp_path: Path
) -> None:
    partner = GpgCli(tmp_path / "partner")
    good = partner.new_key("Acme files <files@acme.example>")
    signer = partner.new_key("Acme signer <sign@acme.example>", encryption=None)
    for name, fingerprint in (("acme-partner-pgp", good), ("acme-signing-only", signer)):
        manifest = {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
                    "metadata": {"name": name},
                    "spec": {"type": "PGPKey", "publicKey": partner.export(fingerprint)}}
        scenarios.apply(crds, ns, json.dumps(manifest))
    accepted = scenarios.wait_condition(crds, ns, "acme-partner-pgp", "True", "KeyAccepted",
                                        plural="credentials")
    assert accepted["status"]["fingerprints"] == [good]
    assert not accepted["status"].get("secretName")
    refused = scenarios.wait_condition(crds, ns, "acme-signing-only", "False",
                                       "InvalidPublicKey", plural="credentials")
    assert "no key that can encrypt" in scenarios.condition(refused, "Ready")["message"]
    partner.stop()


def test_a_node_port_another_namespace_holds_is_said_on_the_connection(
        crds: Cluster, tmp_path: Path) -> None:
    """Fixed node ports serve one namespace: the second namespace's listener
    Service is refused by the API server, and its Connection says so (it used
    to stay 'Credential has not been reconciled yet' while the sync failed)."""
    prefix = f"np{uuid.uuid4().hex[:6]}-"
    port = 30000 + uuid.uuid4().int % 2000
    process = OperatorProcess(
        crds.kubeconfig, [f"{prefix}*"], tmp_path / "operator.log",
        extra=["--listener-service-type", "NodePort",
               "--listener-node-ports", f"sftp={port}"]).start()
    core = client.CoreV1Api(crds.api_client())
    names = [f"{prefix}a", f"{prefix}b"]
    try:
        wait_until_watching(crds, prefix)
        example = scenarios.REPO / "examples" / "01-inbound-push-sftp-conversions.yaml"
        for name in names:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        # One after the other: the first takes the node port.
        scenarios.apply(crds, names[0], example)
        scenarios.wait_configured(crds, names[0], "acme-conversions")
        scenarios.apply(crds, names[1], example)
        refused = scenarios.wait_condition(crds, names[1], "acme-conversions", "False",
                                           "ListenerRefused")
        message = scenarios.condition(refused, "WorkloadReady")["message"]
        assert "connectors-sftp" in message
        assert "already allocated" in message
        assert "listeners.nodePorts" in message
        first = scenarios.get(crds, names[0], "connections", "acme-conversions")
        assert scenarios.condition(first, "WorkloadReady")["reason"] != "ListenerRefused"
    finally:
        process.stop()
        for name in names:
            core.delete_namespace(name)
