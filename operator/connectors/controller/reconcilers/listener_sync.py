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
    AccountTable,
    hash_password,
    secret_name,
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
from ...planning.readiness import REMEMBERED_TABLES, table_digest
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
                 secrets: Callable[[str, str], dict[str, Any] | None]) -> None:
        self.kube = kube
        self.config = config
        # Reads a Secret from the operator's watch cache, or from the API if not there.
        self.secrets = secrets
        self.hashes = PasswordHashes()
        self._host_keys: dict[str, str] = {}
        self._tls_made: set[str] = set()
        self._claims: set[str] = set()
        self._prepared: set[str] = set()
        self._active: dict[str, set[str]] = {}
        # The account table last written per (namespace, protocol).
        self._tables: dict[tuple[str, str], AccountTable | None] = {}
        # Per (namespace, protocol): digest of a recent table -> its account fingerprints.
        self.served_tables: dict[tuple[str, str], dict[str, dict[str, str]]] = {}

    def run(self, namespace: str, members: Iterable[Member],
            credentials: dict[str, dict[str, Any]]) -> SyncResult:
        result = SyncResult()
        by_protocol: dict[str, list[accounts.AccountSource]] = {p: [] for p in PROTOCOLS}
        for member in members:
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
        secret = plan.account_secret(namespace, protocol, account_plan)
        self.kube.apply(secret)
        self._tables[(namespace, protocol)] = account_plan.table
        fingerprints = accounts.account_fingerprints(account_plan.table)
        self.remember(namespace, protocol, table_digest(secret["stringData"][SECRET_KEY]),
                      fingerprints)
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
        self._active.setdefault(namespace, set()).add(protocol)

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
        """What the table of `digest` held, for judging what a pod serves."""
        tables = self.served_tables.setdefault((namespace, protocol), {})
        tables.pop(digest, None)
        tables[digest] = fingerprints  # newest last
        while len(tables) > REMEMBERED_TABLES:
            tables.pop(next(iter(tables)))

    def _current_table(self, namespace: str, protocol: str) -> AccountTable | None:
        """The account table the listener has now: who holds a login or a place
        keeps it against a newcomer of the same second. Read once per process."""
        key = (namespace, protocol)
        if key not in self._tables:
            secret = self.kube.get("Secret", namespace, secret_name(protocol))
            text = decode(secret, SECRET_KEY) if secret else None
            try:
                self._tables[key] = AccountTable.parse(text) if text else None
            except ValueError:
                self._tables[key] = None
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
        self.kube.delete("Secret", namespace, secret_name(protocol))
        self._active.setdefault(namespace, set()).discard(protocol)
