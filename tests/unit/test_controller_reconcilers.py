"""Each reconciler against a fake of the Kube wrapper: what it reads, what it
writes, which events it posts. Seconds, no server; the integration tests run
the same code against the real control plane."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from connectors.api.accounts import SHARDS, AccountTable, shard_of, shard_secret_name
from connectors.api.connection import ConnectionSpec
from connectors.controller.caches import Caches
from connectors.controller.coalescer import Coalescer
from connectors.controller.reconcilers.connection import ConnectionReconciler
from connectors.controller.reconcilers.credential import reconcile_credential
from connectors.controller.reconcilers.job_results import JobResults
from connectors.controller.reconcilers.listener_sync import (
    ListenerSync,
    Member,
    SyncResult,
    member_inputs,
)
from connectors.planning.config import OperatorConfig
from tests.support.fake_kube import FakeKube

NS = "partners"


def credential(name: str = "acme-login", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "Password", **spec}}


def connection(name: str = "acme-clicks", **spec: Any) -> dict[str, Any]:
    base = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Push", "credentialRef": {"name": "acme-login"},
            "filenamePattern": "clicks_*.csv"}
    return {"apiVersion": "connectors.dev/v1alpha1", "kind": "Connection",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {**base, **spec}}


def ready_credential(kube: FakeKube) -> dict[str, Any]:
    """A Credential after its own reconcile, with its generated Secret."""
    body = kube.put(credential())
    reconcile_credential(kube, body)  # type: ignore[arg-type]
    return kube.objects[("Credential", NS, "acme-login")]


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"])
            for c in (obj.get("status") or {}).get("conditions") or []}


# --- credential


def test_credential_generates_its_secret_once() -> None:
    kube = FakeKube()
    body = kube.put(credential())
    outcome = reconcile_credential(kube, body)  # type: ignore[arg-type]
    assert outcome.verdict.ok
    secret = kube.objects[("Secret", NS, outcome.status["secretName"])]
    assert base64.b64decode(secret["data"]["password"])
    assert [e[2] for e in kube.events] == ["SecretCreated"]
    assert conditions(kube.objects[("Credential", NS, "acme-login")])["Ready"][0] == "True"
    # Again, with the status it wrote: nothing to create, announce or patch.
    before = len(kube.writes())
    reconcile_credential(kube, kube.objects[("Credential", NS, "acme-login")])  # type: ignore[arg-type]
    assert kube.writes()[before:] == []
    assert len(kube.events) == 1


def test_credential_with_a_foreign_secret_of_its_name_is_refused() -> None:
    kube = FakeKube()
    kube.put({"kind": "Secret", "metadata": {"name": "acme-login-credential", "namespace": NS},
              "data": {}})
    outcome = reconcile_credential(kube, kube.put(credential()))  # type: ignore[arg-type]
    assert outcome.verdict.reason == "SecretConflict"
    assert ("Secret", NS, "acme-login-credential") not in {c[1:] for c in kube.writes()
                                                          if c[0] != "create"}
    assert kube.events[-1][1:3] == ("Warning", "SecretConflict")


# --- listener sync


def sync(kube: FakeKube, members: list[Member]) -> SyncResult:
    credentials = {k[2]: v for k, v in kube.objects.items() if k[0] == "Credential"}
    listener_sync = ListenerSync(kube, OperatorConfig(),  # type: ignore[arg-type]
                                 lambda ns, name: kube.objects.get(("Secret", ns, name)))
    return listener_sync.run(NS, members, credentials)


def member(body: dict[str, Any], credentials: dict[str, Any] | None = None) -> Member:
    meta = body["metadata"]
    credential = (credentials or {}).get(body["spec"]["credentialRef"]["name"])
    return Member(meta["name"], meta["uid"], ConnectionSpec.model_validate(body["spec"]),
                  meta["creationTimestamp"], member_inputs(body, credential))


def test_listener_sync_writes_the_account_table_and_the_listener() -> None:
    kube = FakeKube()
    ready_credential(kube)
    result = sync(kube, [member(connection())])
    assert result.problems == {}
    assert result.host_key_fingerprint is not None
    assert result.host_key_fingerprint.startswith("SHA256:")
    [account] = shard_table(kube, shard_of("acme-login")).accounts
    assert (account.username, account.connection, account.folder) == (
        "acme-login", "acme-clicks", None)
    assert account.password_hash
    assert account.password_hash.startswith("$scrypt$")
    applied = {(kind, name) for verb, kind, _, name in kube.writes("apply")}
    assert {("Deployment", "connectors-sftp"), ("Service", "connectors-sftp")} <= applied
    assert ("create", "PersistentVolumeClaim", NS, "connectors-data") in kube.writes("create")


def shard_table(kube: FakeKube, shard: int) -> AccountTable:
    secret = kube.objects[("Secret", NS, shard_secret_name("sftp", shard))]
    return AccountTable.parse(base64.b64decode(secret["data"]["accounts.json"])
                              if "data" in secret else secret["stringData"]["accounts.json"])


def test_a_large_account_table_is_split_and_a_change_rewrites_one_shard() -> None:
    """10,000 logins: no shard Secret near the API server's 1 MiB limit, and one
    more Connection rewrites only the shard of its login."""
    kube = FakeKube()
    keys = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk8s2rv++mP2HE7sJCttP3dpLMeUdqJy3KAu1b2tSyP"
    members = []
    for i in range(10_001):
        name = f"p{i:05d}"
        body = kube.put(credential(name, type="PublicKey", publicKey=keys))
        body["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        members.append(member(connection(name, credentialRef={"name": name})))
    listener_sync = ListenerSync(kube, OperatorConfig(),  # type: ignore[arg-type]
                                 lambda ns, name: kube.objects.get(("Secret", ns, name)))
    credentials = {k[2]: v for k, v in kube.objects.items() if k[0] == "Credential"}
    result = listener_sync.run(NS, members[:10_000], credentials)
    assert result.problems == {}
    assert len(result.accounts) == 10_000
    sizes = [len(secret["stringData"]["accounts.json"]) for (kind, _, name), secret
             in kube.objects.items() if kind == "Secret" and name.startswith("connectors-accounts")]
    assert len(sizes) == SHARDS
    assert max(sizes) < 512 * 1024, max(sizes)
    assert sum(len(shard_table(kube, s).accounts) for s in range(SHARDS)) == 10_000
    before = len(kube.writes("apply"))
    listener_sync.run(NS, members, credentials)
    secrets = [name for _, kind, _, name in kube.writes("apply")[before:] if kind == "Secret"]
    assert secrets == [shard_secret_name("sftp", shard_of("p10000"))]
    assert "p10000" in {a.username for a in shard_table(kube, shard_of("p10000")).accounts}


def test_listener_sync_reports_a_username_conflict_and_keeps_the_holder() -> None:
    kube = FakeKube()
    ready_credential(kube)
    other = kube.put(credential("aaa-test", username="acme-login"))
    other["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    reconcile_credential(kube, other)  # type: ignore[arg-type]
    taker = connection("aaa-clicks", credentialRef={"name": "aaa-test"})
    result = sync(kube, [member(taker), member(connection())])
    assert set(result.problems) == {"aaa-clicks"}
    assert "already the login of Credential acme-login" in result.problems["aaa-clicks"]


def test_listener_sync_waits_for_the_credential() -> None:
    kube = FakeKube()
    kube.put(credential())  # not reconciled: no Ready condition yet
    result = sync(kube, [member(connection())])
    assert result.problems == {"acme-clicks": "waiting for Credential acme-login to be Ready"}
    assert not kube.writes("apply")


# --- connection


def reconciler(kube: FakeKube) -> tuple[ConnectionReconciler, Caches, list[str]]:
    caches = Caches(kube)  # type: ignore[arg-type]
    for (kind, ns, name), obj in kube.objects.items():
        if kind == "Credential":
            caches.credentials[(ns, name)] = obj
    config = OperatorConfig()
    listener_sync = ListenerSync(kube, config, caches.secret)  # type: ignore[arg-type]

    async def sync_namespace(namespace: str) -> SyncResult:
        credentials = {name: body for (ns, name), body in caches.credentials.items()}
        members = [member(body, credentials) for (ns, _), body in caches.connections.items()
                   if ns == namespace]
        return listener_sync.run(namespace, members, credentials)

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    requested: list[str] = []
    return (ConnectionReconciler(kube, config, caches, listener_sync,  # type: ignore[arg-type]
                                 Coalescer(sync_namespace, delay=0), requested.append, run),
            caches, requested)


def reconcile(kube: FakeKube, caches: Caches, target: ConnectionReconciler,
              body: dict[str, Any]) -> dict[str, Any]:
    kube.put(body)
    caches.connections[(NS, body["metadata"]["name"])] = kube.objects[
        ("Connection", NS, body["metadata"]["name"])]
    asyncio.run(target.reconcile((NS, body["metadata"]["name"])))
    return kube.objects[("Connection", NS, body["metadata"]["name"])]


def test_connection_with_an_invalid_spec_configures_nothing() -> None:
    kube = FakeKube()
    ready_credential(kube)
    target, caches, _ = reconciler(kube)
    body = reconcile(kube, caches, target, connection(schedule="0 * * * *"))
    assert conditions(body)["Validated"] == ("False", "InvalidSpec")
    assert conditions(body)["Ready"][0] == "False"
    assert not kube.writes("apply")
    assert ("acme-clicks", "Warning", "InvalidSpec") in {e[:3] for e in kube.events}


def test_connection_without_its_credential_says_which() -> None:
    kube = FakeKube()
    target, caches, requested = reconciler(kube)
    body = reconcile(kube, caches, target, connection())
    assert conditions(body)["CredentialReady"] == ("False", "CredentialNotFound")
    assert "acme-login" in next(c["message"] for c in body["status"]["conditions"]
                                if c["type"] == "CredentialReady")
    assert requested == [NS]  # an account it may still have must go


def test_platform_initiated_connection_gets_its_cronjob_and_one_announcement() -> None:
    kube = FakeKube()
    ready_credential(kube)
    target, caches, _ = reconciler(kube)
    spec = {"methodology": "Pull", "schedule": "0 * * * *",
            "remote": {"host": "sftp.acme.example", "folder": "/out",
                       "hostKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0"
                                    "j54elL+x+D3NK2WR3xXx"]}}
    body = reconcile(kube, caches, target, connection(**spec))
    assert conditions(body)["Ready"] == ("True", "Ready")
    assert ("apply", "CronJob", NS, "transfer-acme-clicks") in kube.writes()
    configured = [e for e in kube.events if e[2] == "Configured"]
    assert len(configured) == 1
    # The same again: no second announcement, no status write.
    patches = len(kube.writes("patch_status"))
    asyncio.run(target.reconcile((NS, "acme-clicks")))
    assert len([e for e in kube.events if e[2] == "Configured"]) == 1
    assert len(kube.writes("patch_status")) == patches


# --- job results


def test_a_finished_job_becomes_last_transfer_once() -> None:
    kube = FakeKube()
    caches = Caches(kube)  # type: ignore[arg-type]
    body = kube.put(connection())
    caches.connections[(NS, "acme-clicks")] = body
    summary = {"outcome": "Succeeded", "files": 3, "bytes": 300, "time": "2026-01-01T00:00:00Z"}
    kube.put({"kind": "Pod", "metadata": {
        "name": "transfer-acme-clicks-1-x", "namespace": NS,
        "labels": {"batch.kubernetes.io/job-name": "transfer-acme-clicks-1"}},
        "status": {"containerStatuses": [{"state": {"terminated": {
            "message": "log line\n" + json.dumps(summary)}}}]}})
    job = {"kind": "Job", "metadata": {"name": "transfer-acme-clicks-1", "namespace": NS},
           "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    results = JobResults(kube, caches)  # type: ignore[arg-type]
    results.record_job(job, "acme-clicks")
    last = kube.objects[("Connection", NS, "acme-clicks")]["status"]["lastTransfer"]
    assert (last["files"], last["bytes"], last["source"]) == (3, 300,
                                                              "job/transfer-acme-clicks-1")
    assert [e[1:3] for e in kube.events] == [("Normal", "TransferSucceeded")]
    results.record_job(job, "acme-clicks")  # a restart lists it again
    assert len(kube.events) == 1
    assert len(kube.writes("patch_status")) == 1


@pytest.mark.parametrize(("message", "outcome", "reason"), [
    ("", "Failed", "TransferFailed"),
    (json.dumps({"outcome": "Failed", "message": "host key mismatch"}), "Failed",
     "TransferFailed"),
])
def test_a_failed_job_is_a_warning(message: str, outcome: str, reason: str) -> None:
    kube = FakeKube()
    caches = Caches(kube)  # type: ignore[arg-type]
    caches.connections[(NS, "acme-clicks")] = kube.put(connection())
    kube.put({"kind": "Pod", "metadata": {
        "name": "p", "namespace": NS,
        "labels": {"batch.kubernetes.io/job-name": "transfer-acme-clicks-2"}},
        "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]}})
    job = {"kind": "Job", "metadata": {"name": "transfer-acme-clicks-2", "namespace": NS},
           "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    JobResults(kube, caches).record_job(job, "acme-clicks")  # type: ignore[arg-type]
    last = kube.objects[("Connection", NS, "acme-clicks")]["status"]["lastTransfer"]
    assert last["outcome"] == outcome
    assert kube.events[-1][1:3] == ("Warning", reason)


@pytest.mark.parametrize(("spec", "words"), [
    ({"methodology": "Pull", "schedule": "0 * * * *",
      "remote": {"host": "sftp.acme.example", "folder": "/out",
                 "hostKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0"
                              "j54elL+x+D3NK2WR3xXx"]}}, "no transfer is scheduled"),
    ({}, "the partner's logins are refused"),
])
def test_a_suspended_connection_is_not_ready(spec: dict[str, Any], words: str) -> None:
    kube = FakeKube()
    ready_credential(kube)
    target, caches, _ = reconciler(kube)
    body = reconcile(kube, caches, target, connection(suspend=True, **spec))
    assert conditions(body)["Ready"] == ("False", "Suspended")
    # Configured all the same (no listener pod runs in a fake, hence its own reason).
    assert conditions(body)["WorkloadReady"] in {("True", "TransferScheduled"),
                                                 ("False", "ListenerNotReady")}
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert words in ready["message"]
    assert not [e for e in kube.events if e[2] == "Configured"]


def test_a_state_change_rejudges_only_the_connections_of_the_shards_it_touched() -> None:
    kube = FakeKube()
    listener_sync = ListenerSync(kube, OperatorConfig(),  # type: ignore[arg-type]
                                 lambda ns, name: None)
    listener_sync.remember(NS, "sftp", "d-a1", {"a": "fp-a"})
    listener_sync.remember(NS, "sftp", "d-a2", {"a": "fp-a2"})
    listener_sync.remember(NS, "sftp", "d-b1", {"b": "fp-b", "c": "fp-c"})
    before = {"pod-1": "sftp d-a1,d-b1"}
    # pod-1 took up a new version of a's shard; b's shard is unchanged.
    assert listener_sync.served_by(NS, before, {"pod-1": "sftp d-a2,d-b1"}) == {"a"}
    # A second pod reporting the same shards changes what pod-2 serves: all of them.
    assert listener_sync.served_by(NS, before, {**before, "pod-2": "sftp d-a1,d-b1"}) == {
        "a", "b", "c"}
    # A digest the operator does not remember serves no one either way.
    assert listener_sync.served_by(NS, before, {"pod-1": "sftp d-a1,d-b1,d-zz"}) == set()


def test_a_sync_result_names_the_connections_whose_outcome_changed() -> None:
    first = SyncResult(accounts={"a": "fp-a", "b": "fp-b"}, inputs={"a": "1/10", "b": "1/11"},
                       host_key_fingerprint="SHA256:x")
    same = SyncResult(accounts={"a": "fp-a", "b": "fp-b"}, inputs={"a": "1/10", "b": "1/11"},
                      host_key_fingerprint="SHA256:x")
    assert same.changed_since(first) == []
    edited = SyncResult(
        accounts={"a": "fp-a", "b": "fp-b2"}, inputs={"a": "1/10", "b": "2/11", "c": "1/12"},
        problems={"c": "username taken"}, host_key_fingerprint="SHA256:x")
    assert edited.changed_since(first) == ["b", "c"]
    assert edited.covers("b", "2/11")
    assert not edited.covers("b", "1/11")
    rekeyed = SyncResult(accounts=dict(same.accounts), inputs=dict(same.inputs),
                         host_key_fingerprint="SHA256:y")
    assert rekeyed.changed_since(first) == ["a", "b"]
    assert first.changed_since(None) == ["a", "b"]
