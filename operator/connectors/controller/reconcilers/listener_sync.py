"""Keeping each namespace's listeners in line with its partner-initiated Connections.

One sync serves every Connection of a namespace: requests arriving while one is
pending share the next run, so 500 Connections applied at once cost a handful of
writes of the account table, not 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from ...api.accounts import (
    DEFAULT_LOG_N,
    GENERATED_LOG_N,
    SECRET_KEY,
    SHARDS,
    Account,
    AccountTable,
    hash_password,
    secret_name,
    shard_number,
    shard_secret_name,
)
from ...api.compat import credential_misfit
from ...api.connection import ConnectionSpec
from ...api.credential import CredentialSpec
from ...planning import accounts
from ...planning import credentials as credential_plan
from ...planning import listeners as plan
from ...planning.conditions import find
from ...planning.config import LABEL_MANAGED_BY, MANAGED_BY, PROTOCOLS, OperatorConfig
from ...planning.objects import data_claim
from ...planning.readiness import REMEMBERED_TABLES, parse_state, table_digest
from ..kube import Kube
from .credential import decode

log = logging.getLogger(__name__)


@dataclass
class Member:
    """A partner-initiated Connection as the listener sync sees it."""

    name: str
    uid: str
    spec: ConnectionSpec
    created: str = ""
    """metadata.creationTimestamp: the older Connection keeps a contested place."""
    inputs: str = ""
    """What its outcome depends on besides the other members (member_inputs)."""


def member_inputs(body: dict[str, Any], credential: dict[str, Any] | None) -> str:
    """The version of a Connection's spec and of its Credential: a sync that saw
    these has the Connection's outcome as it is now, unless another Connection
    changed it (and then its outcome changed, which puts it on the queue)."""
    generation = (body.get("metadata") or {}).get("generation", 0)
    version = ((credential or {}).get("metadata") or {}).get("resourceVersion", "")
    return f"{generation}/{version}"


@dataclass
class SyncResult:
    """Per Connection: None when it has an account, else why not."""

    problems: dict[str, str] = field(default_factory=dict)
    host_key_fingerprint: str | None = None
    # The FTP and SMTP listeners' certificate, when one was read.
    tls_fingerprint: str | None = None
    # Per Connection with an account: its fingerprint in the table just written.
    accounts: dict[str, str] = field(default_factory=dict)
    # Per Connection: why the API server refused its listener's objects (an
    # invalid Service, such as a node port another namespace holds).
    refused: dict[str, str] = field(default_factory=dict)
    # Per member: the inputs it was planned from (Member.inputs).
    inputs: dict[str, str] = field(default_factory=dict)

    def covers(self, connection: str, inputs: str) -> bool:
        """Whether this result planned the Connection as it is now."""
        return self.inputs.get(connection) == inputs

    def outcome(self, connection: str) -> tuple[str | None, ...]:
        """All a Connection's reconcile reads from the result."""
        return (self.inputs.get(connection), self.accounts.get(connection),
                self.problems.get(connection), self.refused.get(connection))

    def changed_since(self, before: SyncResult | None) -> list[str]:
        """The Connections whose outcome differs from `before`: every one when the
        listener's identity (host key, certificate) changed."""
        if before is None or (before.host_key_fingerprint, before.tls_fingerprint) != (
                self.host_key_fingerprint, self.tls_fingerprint):
            return sorted(self.inputs)
        return sorted(name for name in self.inputs.keys() | before.inputs.keys()
                      if self.outcome(name) != before.outcome(name))


def refusal(service: str, error: ApiException) -> str:
    """The API server's reason for refusing a listener's Service, and the fix."""
    try:
        message = str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        message = str(error.reason)
    text = f"the API server refused Service {service}: {message}"
    if "already allocated" in message:
        text += ("; a fixed node port serves one namespace: give each namespace other "
                 "node ports, or leave them unset (chart value listeners.nodePorts)")
    return text


class PasswordHashes:
    """scrypt is slow on purpose; hash each generated password once per Secret version.

    The salt derives from the Secret's uid and resourceVersion: unique per
    credential, and stable across operator restarts, so an unchanged account
    table renders to the same bytes and is not rewritten.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}

    def get(self, secret: dict[str, Any]) -> str | None:
        meta = secret["metadata"]
        key = (meta["uid"], meta["resourceVersion"])
        if key not in self._cache:
            password = decode(secret, "password")
            if not password:
                return None
            salt = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()[:16]
            generated = (meta.get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY
            cost = GENERATED_LOG_N if generated else DEFAULT_LOG_N
            self._cache[key] = hash_password(password, salt=salt, log_n=cost)
        return self._cache[key]


class ListenerSync:
    """The blocking work of one namespace's sync; run in a thread."""

    def __init__(self, kube: Kube, config: OperatorConfig,
                 secrets: Callable[[str, str], dict[str, Any] | None],
                 pods: Callable[[str, str], list[str]] = lambda namespace, protocol: []
                 ) -> None:
        self.kube = kube
        self.config = config
        # Reads a Secret from the operator's watch cache, or from the API if not there.
        self.secrets = secrets
        # The listener pods of (namespace, protocol) the operator knows of.
        self.pods = pods
        self._nudge_refused = False
        self.hashes = PasswordHashes()
        self._host_keys: dict[str, str] = {}
        self._tls_made: set[str] = set()
        self._claims: set[str] = set()
        self._prepared: set[str] = set()
        self._active: dict[str, set[str]] = {}
        # The account table last written per (namespace, protocol).
        self._tables: dict[tuple[str, str], AccountTable | None] = {}
        # Per (namespace, protocol): the rendered text of each shard Secret as last
        # written, so that a sync rewrites only the shards that changed.
        self._shards: dict[tuple[str, str], dict[int, str]] = {}
        # Per (namespace, shard Secret name): the resourceVersion the write made.
        self._shard_versions: dict[tuple[str, str], str] = {}
        # Per (namespace, protocol): digest of a recent table -> its account fingerprints.
        self.served_tables: dict[tuple[str, str], dict[str, dict[str, str]]] = {}

    def run(self, namespace: str, members: Iterable[Member],
            credentials: dict[str, dict[str, Any]]) -> SyncResult:
        result = SyncResult()
        by_protocol: dict[str, list[accounts.AccountSource]] = {p: [] for p in PROTOCOLS}
        for member in members:
            result.inputs[member.name] = member.inputs
            source = self._source(namespace, member, credentials, result)
            if source is not None:
                by_protocol[plan.protocol_of(member.spec)].append(source)
        for protocol, sources in by_protocol.items():
            account_plan = accounts.plan_accounts(sources, self._current_table(namespace, protocol))
            result.problems.update(account_plan.conflicts)
            if account_plan.owners:
                self._ensure(namespace, protocol, account_plan, result)
            else:
                self._remove(namespace, protocol)
        return result

    def _source(self, namespace: str, member: Member, credentials: dict[str, dict[str, Any]],
                result: SyncResult) -> accounts.AccountSource | None:
        """The member's account, or None (with the reason) when its Credential cannot serve."""
        ref = member.spec.credential_ref.name
        body = credentials.get(ref)
        ready = find((body or {}).get("status", {}).get("conditions"), "Ready")
        if body is None or ready is None or ready.get("status") != "True":
            result.problems[member.name] = f"waiting for Credential {ref} to be Ready"
            return None
        spec = CredentialSpec.model_validate(body["spec"])
        misfit = credential_misfit(member.spec, spec, ref)
        if misfit:
            result.problems[member.name] = misfit
            return None
        password_hash = None
        keys: tuple[str, ...] = ()
        if spec.type == "Password":
            secret_ref = credential_plan.secret_name_for(ref, spec)
            secret = self.secrets(namespace, secret_ref)
            password_hash = self.hashes.get(secret) if secret else None
            if password_hash is None:
                result.problems[member.name] = f"Secret {secret_ref} holds no password yet"
                return None
        else:
            keys = tuple(line.strip() for line in (spec.public_key or "").splitlines()
                         if line.strip() and not line.strip().startswith("#"))
        username = credential_plan.username_for(ref, spec)
        return accounts.AccountSource(
            member.name, member.uid, member.spec, username, password_hash, keys,
            credential=ref, created=member.created,
            credential_created=(body.get("metadata") or {}).get("creationTimestamp", ""))

    def _ensure(self, namespace: str, protocol: str, account_plan: accounts.AccountPlan,
                result: SyncResult) -> None:
        self.ensure_data_claim(namespace)
        self.ensure_identity(namespace)
        if protocol == "sftp":
            result.host_key_fingerprint = self._host_key(namespace)
        if protocol in plan.TLS_PROTOCOLS:
            result.tls_fingerprint = self._tls_certificate(namespace)
        fingerprints = self._write_table(namespace, protocol, account_plan)
        result.accounts.update(fingerprints)
        self.kube.apply(plan.listener_deployment(namespace, protocol, self.config, account_plan))
        try:
            self.kube.apply(plan.listener_service(namespace, protocol, self.config,
                                                  account_plan))
        except ApiException as error:
            if error.status != 422:
                raise
            # Invalid, and retrying will not change that: say so on every
            # Connection it serves instead of failing the whole sync forever.
            why = refusal(plan.listener_name(protocol), error)
            log.warning("%s: %s", namespace, why)
            for source in account_plan.owners:
                result.refused[source.connection] = why
        if protocol not in self._active.get(namespace, set()):
            # Once per process: the table's single Secret from before shards goes
            # once the Deployment mounts the shards (a pod still running keeps what
            # it has loaded).
            self.kube.delete("Secret", namespace, secret_name(protocol))
        self._active.setdefault(namespace, set()).add(protocol)

    def _write_table(self, namespace: str, protocol: str,
                     account_plan: accounts.AccountPlan) -> dict[str, str]:
        """Writes the shards of the account table that changed and removes those
        left empty; returns the fingerprint of each account in it."""
        key = (namespace, protocol)
        written = self._written_shards(namespace, protocol)
        planned = plan.account_secrets(namespace, protocol, account_plan)
        changed = [shard for shard in planned if written.get(shard) != planned[shard][1]]
        for shard in changed:
            answer = self.kube.apply(planned[shard][0])
            written[shard] = planned[shard][1]
            self._shard_versions[(namespace, shard_secret_name(protocol, shard))] = str(
                answer["metadata"].get("resourceVersion"))
        gone = sorted(set(written) - set(planned))
        for shard in gone:
            self.kube.delete("Secret", namespace, shard_secret_name(protocol, shard))
            del written[shard]
        if changed or gone:
            self._nudge(namespace, protocol, written)
        self._tables[key] = account_plan.table
        fingerprints: dict[str, str] = {}
        for _, text, table in planned.values():
            shard_fingerprints = accounts.account_fingerprints(table)
            self.remember(namespace, protocol, table_digest(text), shard_fingerprints)
            fingerprints.update(shard_fingerprints)
        return fingerprints

    def observed_secret(self, namespace: str, name: str, resource_version: str | None) -> None:
        """A watch saw a listener Secret at `resource_version` (None: deleted): a
        shard that someone else changed or deleted is written again by the next sync."""
        known = self._shard_versions.get((namespace, name))
        if known is None or known == resource_version:
            return
        del self._shard_versions[(namespace, name)]
        for protocol in PROTOCOLS:
            shard = shard_number(protocol, name)
            if shard is not None:
                self._shards.get((namespace, protocol), {}).pop(shard, None)

    def _nudge(self, namespace: str, protocol: str, written: dict[int, str]) -> None:
        """Tells the kubelet to refresh the listener pods' account files now.

        The kubelet refreshes a pod's Secret volumes on its periodic sync of the
        pod (syncFrequency: a minute by default) and on any change to the pod,
        so an annotation naming the table brings a new account to the pod in a
        second or two instead of up to a minute. Best effort: without the
        permission the periodic refresh still comes."""
        if self._nudge_refused:
            return
        digest = table_digest(",".join(table_digest(written[s]) for s in sorted(written)))
        for pod in self.pods(namespace, protocol):
            try:
                self.kube.annotate("Pod", namespace, pod, {plan.ANNOTATION_ACCOUNTS: digest})
            except ApiException as error:
                if error.status != 403:
                    raise
                log.warning("may not patch listener pods (%s): new accounts reach them at "
                            "the kubelet's next periodic refresh", error.reason)
                self._nudge_refused = True
                return

    def _written_shards(self, namespace: str, protocol: str) -> dict[int, str]:
        """The shard Secrets of a table as they are: read once per process, then
        kept as written."""
        key = (namespace, protocol)
        if key not in self._shards:
            found: dict[int, str] = {}
            for secret in self.kube.list_in("Secret", [namespace],
                                            f"{plan.LABEL_ACCOUNTS}={protocol}"):
                shard = shard_number(protocol, secret["metadata"]["name"])
                text = decode(secret, SECRET_KEY)
                if shard is not None and text is not None:
                    found[shard] = text
            self._shards[key] = found
        return self._shards[key]

    def _host_key(self, namespace: str) -> str:
        """The namespace's SFTP host key: made once, then only read. Returns its fingerprint."""
        if namespace not in self._host_keys:
            private, public = credential_plan.new_key_pair(f"connectors-sftp@{namespace}")
            created = self.kube.create(plan.host_key_secret(namespace, private, public))
            if created is None:
                existing = self.kube.get("Secret", namespace, plan.HOST_KEY_SECRET) or {}
                public = decode(existing, f"{plan.HOST_KEY_FILE}.pub") or ""
            self._host_keys[namespace] = credential_plan.check_authorized_keys(
                public).fingerprints[0]
        return self._host_keys[namespace]

    def remember(self, namespace: str, protocol: str, digest: str,
                 fingerprints: dict[str, str]) -> None:
        """What the shard of `digest` held, for judging what a pod serves."""
        tables = self.served_tables.setdefault((namespace, protocol), {})
        tables.pop(digest, None)
        tables[digest] = fingerprints  # newest last
        while len(tables) > REMEMBERED_TABLES * SHARDS:
            tables.pop(next(iter(tables)))

    def served_by(self, namespace: str, before: dict[str, str],
                  after: dict[str, str]) -> set[str]:
        """The Connections whose service a change of the state ConfigMap can change:
        those in a shard some pod took up or dropped. A digest the operator does not
        remember serves no one (readiness.py), so taking it up or dropping it changes
        nothing."""
        changed: set[tuple[str, str]] = set()
        for pod in before.keys() | after.keys():
            old, new = parse_state(before.get(pod, "")), parse_state(after.get(pod, ""))
            served_before = {(old[0], d) for d in old[1]} if old else set()
            served_after = {(new[0], d) for d in new[1]} if new else set()
            changed |= served_before ^ served_after
        names: set[str] = set()
        for protocol, digest in changed:
            names.update(self.served_tables.get((namespace, protocol), {}).get(digest, {}))
        return names

    def _current_table(self, namespace: str, protocol: str) -> AccountTable | None:
        """The account table the listener has now: who holds a login or a place
        keeps it against a newcomer of the same second. Read once per process."""
        key = (namespace, protocol)
        if key not in self._tables:
            texts = list(self._written_shards(namespace, protocol).values())
            # The single Secret of a table from before shards, until it is removed.
            legacy = self.kube.get("Secret", namespace, secret_name(protocol))
            texts += [decode(legacy, SECRET_KEY) or ""] if legacy else []
            held: list[Account] = []
            for text in texts:
                try:
                    held += AccountTable.parse(text).accounts
                except ValueError:
                    continue
            self._tables[key] = AccountTable(accounts=held) if held else None
        return self._tables[key]

    def ensure_identity(self, namespace: str) -> None:
        """The ServiceAccount listeners and the processor report with, and the
        listeners' state ConfigMap: once per namespace and process."""
        if namespace not in self._prepared:
            for obj in plan.listener_identity(namespace, self.config):
                self.kube.apply(obj)
            self.kube.create(plan.state_configmap(namespace))
            self._prepared.add(namespace)

    def ensure_data_claim(self, namespace: str) -> None:
        """The namespace's data volume claim, for listeners and transfer jobs alike:
        created once per namespace and process (create never replaces), never
        deleted by the operator, since files outlive every Connection."""
        if namespace not in self._claims:
            self.kube.create(data_claim(namespace, self.config))
            self._claims.add(namespace)

    def _tls_certificate(self, namespace: str) -> str | None:
        """The namespace's listener certificate: the platform's own Secret when
        configured, else a self-signed one made once (create never replaces).
        Returns its SHA-256 fingerprint, for status.endpoint."""
        if not self.config.listener_tls_secret and namespace not in self._tls_made:
            cert, key = credential_plan.new_self_signed_certificate(plan.tls_names(namespace))
            self.kube.create(plan.tls_secret(namespace, cert, key))
            self._tls_made.add(namespace)
        # Read each sync: a platform's Secret (cert-manager's) is renewed by others.
        secret = self.kube.get("Secret", namespace, plan.tls_secret_name(self.config))
        pem = decode(secret, "tls.crt") if secret else None
        try:
            return credential_plan.certificate_facts(pem).sha256 if pem else None
        except ValueError:
            return None  # not a certificate: the listener will say so

    def forget_tls_certificate(self, namespace: str) -> None:
        self._tls_made.discard(namespace)

    def forget_prepared(self, namespace: str) -> None:
        """The listener identity or state ConfigMap was deleted: make them again."""
        self._prepared.discard(namespace)

    def forget_host_key(self, namespace: str) -> None:
        self._host_keys.pop(namespace, None)

    def _remove(self, namespace: str, protocol: str) -> None:
        """No account left: remove the listener. The garbage collector would too, once the
        last owner is gone; doing it here also covers a Connection that changed method."""
        active = self._active.get(namespace)
        if active is not None and protocol not in active:
            return  # known to be absent already: spare the API three DELETEs
        name = plan.listener_name(protocol)
        self.kube.delete("Deployment", namespace, name)
        self.kube.delete("Service", namespace, name)
        written = self._written_shards(namespace, protocol)
        for shard in sorted(written):
            self.kube.delete("Secret", namespace, shard_secret_name(protocol, shard))
        written.clear()
        self.kube.delete("Secret", namespace, secret_name(protocol))
        self._tables.pop((namespace, protocol), None)
        self._active.setdefault(namespace, set()).discard(protocol)
