"""Pure planning for listeners: one Deployment and Service per namespace and protocol.

Every partner-initiated Connection of a namespace becomes one account in the
listener of its protocol. The listener's objects are owned by every Connection
that has an account in it, so the garbage collector removes the listener with
the last one, even while the operator is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.accounts import Account, AccountTable, permissions_for, secret_name
from ..api.common import API_VERSION
from ..api.connection import ConnectionSpec
from .config import LABEL_LISTENER, OperatorConfig
from .objects import (
    base_labels,
    container_security_context,
    data_volume,
    image_pull_secrets,
    pod_security_context,
    resources,
    tmp_volume,
)
from .readiness import STATE_CONFIGMAP, table_digest

PROTOCOL_OF_METHOD = {"SFTP": "sftp", "FTP": "ftp", "Email": "smtp"}
HOST_KEY_SECRET = "connectors-sftp-hostkey"
HOST_KEY_FILE = "ssh_host_ed25519_key"
ACCOUNTS_DIR = "/etc/connectors/accounts"
HOST_KEY_DIR = "/etc/connectors/hostkey"
# FTP and SMTP listeners always have a certificate: a password never crosses the
# network in clear text (FTP without TLS, or SMTP AUTH before STARTTLS, is refused).
TLS_PROTOCOLS = ("ftp", "smtp")
TLS_SECRET = "connectors-listener-tls"
TLS_DIR = "/etc/connectors/tls"


def tls_secret_name(config: OperatorConfig) -> str:
    return config.listener_tls_secret or TLS_SECRET


def tls_names(namespace: str) -> list[str]:
    """The names a self-signed listener certificate covers: its Services'."""
    return [f"{listener_name(p)}.{namespace}.svc" for p in TLS_PROTOCOLS] + [
        f"{listener_name(p)}.{namespace}.svc.cluster.local" for p in TLS_PROTOCOLS]


def tls_secret(namespace: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
    """The namespace's listener certificate, made once; never owned by a
    Connection, so that partners who pinned it keep it across listeners."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": namespace,
                     "labels": {**base_labels("listener"), LABEL_LISTENER: "tls"}},
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
    }


def protocol_of(spec: ConnectionSpec) -> str:
    return PROTOCOL_OF_METHOD[spec.method]


def listener_name(protocol: str) -> str:
    return f"connectors-{protocol}"


def listener_labels(protocol: str) -> dict[str, str]:
    return {**base_labels("listener"), LABEL_LISTENER: protocol}


@dataclass(frozen=True)
class AccountSource:
    """What one Connection contributes to its listener's account table."""

    connection: str
    uid: str
    spec: ConnectionSpec
    username: str
    password_hash: str | None
    authorized_keys: tuple[str, ...]
    credential: str = ""
    """The Credential's name: one login serves the Connections of one Credential."""
    created: str = ""
    """The Connection's creationTimestamp (RFC 3339 sorts as text); "" when unknown."""
    credential_created: str = ""
    """The Credential's creationTimestamp."""

    @property
    def place(self) -> str:
        """Where the partner sees this Connection: "/" or its folder."""
        return f"/{self.spec.folder}/" if self.spec.folder else "/"


@dataclass(frozen=True)
class AccountPlan:
    table: AccountTable
    owners: list[AccountSource]
    # Connection name -> why it has no account (a username another Connection holds).
    conflicts: dict[str, str]


def plan_accounts(sources: list[AccountSource],
                  current: AccountTable | None = None) -> AccountPlan:
    """One account per Connection, grouped into logins by username.

    A username belongs to one Credential: the oldest that claims it (creation
    time, then name), so a newer Credential can never take over a partner's
    login. That Credential's Connections share the login, each at its own
    place (the root, or spec.folder); a place already taken stays with the
    older Connection. Either way the newer one gets no account and a conflict
    that names the fix, and no existing account changes.

    Creation times have a resolution of one second: between two objects of
    the same second, the one that holds the login or place in the `current`
    table keeps it, so a tie can never move a partner's login either.
    """
    incumbent = {(a.username, a.connection) for a in current.accounts} if current else set()
    holding = {(s.username, s.credential) for s in sources
               if (s.username, s.connection) in incumbent}
    holders: dict[str, AccountSource] = {}
    for source in sorted(sources, key=lambda s: (
            s.credential_created, (s.username, s.credential) not in holding, s.credential)):
        holders.setdefault(source.username, source)
    places: dict[tuple[str, str], str] = {}
    accounts: list[Account] = []
    owners: list[AccountSource] = []
    conflicts: dict[str, str] = {}
    for source in sorted(sources, key=lambda s: (
            s.created, (s.username, s.connection) not in incumbent, s.connection)):
        holder = holders[source.username]
        if source.credential != holder.credential:
            conflicts[source.connection] = (
                f"username {source.username} is already the login of Credential "
                f"{holder.credential or holder.connection} (Connection {holder.connection}) on "
                f"the same listener, which is older: give Credential "
                f"{source.credential or source.connection} another username")
            continue
        taken = places.get((source.username, source.place))
        if taken is not None:
            conflicts[source.connection] = (
                f"Connection {taken} already appears at {source.place} for login "
                f"{source.username}, which this Connection shares: set spec.folder (for "
                f"example {source.connection!r}) so that each Connection has its own place")
            continue
        places[(source.username, source.place)] = source.connection
        owners.append(source)
        accounts.append(Account(
            username=source.username,
            connection=source.connection,
            direction=source.spec.direction,
            home=source.connection,
            permissions=permissions_for(source.spec.direction),
            filename_pattern=source.spec.filename_pattern,
            password_hash=source.password_hash,
            authorized_keys=list(source.authorized_keys),
            suspended=source.spec.suspend,
            delete_after_download=source.spec.delete_after_download,
            folder=source.spec.folder,
            allowed_senders=_allowed_senders(source.spec),
        ))
    return AccountPlan(AccountTable(accounts=accounts), owners, conflicts)


def _allowed_senders(spec: ConnectionSpec) -> list[str] | None:
    senders = spec.email.allowed_senders if spec.email is not None else None
    return list(senders) if senders is not None else None


def _owner_references(owners: list[AccountSource]) -> list[dict[str, Any]]:
    # Many owners, none the controller: the object lives while any of them does.
    return [
        {"apiVersion": API_VERSION, "kind": "Connection", "name": o.connection, "uid": o.uid,
         "controller": False, "blockOwnerDeletion": False}
        for o in owners
    ]


def account_secret(namespace: str, protocol: str, plan: AccountPlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(protocol),
            "namespace": namespace,
            "labels": listener_labels(protocol),
            "ownerReferences": _owner_references(plan.owners),
        },
        "stringData": {"accounts.json": plan.table.render()},
    }


def host_key_secret(namespace: str, private_pem: str, public_line: str) -> dict[str, Any]:
    """The SFTP host key, generated once per namespace and never owned by a Connection:
    partners pin it, so it must outlive every Connection and every listener restart."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": HOST_KEY_SECRET,
            "namespace": namespace,
            "labels": listener_labels("sftp"),
        },
        "stringData": {HOST_KEY_FILE: private_pem, f"{HOST_KEY_FILE}.pub": public_line},
    }


def _listener_args(protocol: str, config: OperatorConfig) -> tuple[list[str], list[dict[str, Any]]]:
    port = config.ports[protocol].container
    env: list[dict[str, Any]] = [
        {"name": "CONNECTORS_NAMESPACE",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CONNECTORS_LISTEN_PORT", "value": str(port)},
        {"name": "CONNECTORS_ACCOUNTS_FILE", "value": f"{ACCOUNTS_DIR}/accounts.json"},
        {"name": "CONNECTORS_DATA_ROOT", "value": "/data"},
        # Where the pod reports the account table it serves (readiness.py).
        {"name": "CONNECTORS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CONNECTORS_STATE_CONFIGMAP", "value": STATE_CONFIGMAP},
    ]
    if protocol == "sftp":
        env.append({"name": "CONNECTORS_HOST_KEY_FILE", "value": f"{HOST_KEY_DIR}/{HOST_KEY_FILE}"})
    if protocol == "ftp":
        low, high = config.ftp_passive_ports
        env.append({"name": "CONNECTORS_PASSIVE_PORTS", "value": f"{low}-{high}"})
        if config.ftp_masquerade_address:
            env.append({"name": "CONNECTORS_MASQUERADE_ADDRESS",
                        "value": config.ftp_masquerade_address})
    if protocol == "smtp":
        env.append({"name": "CONNECTORS_EMAIL_DOMAIN", "value": config.email_domain})
        submission = config.ports["submission"].container if config.smtp_submission else 0
        env += [
            {"name": "CONNECTORS_SUBMISSION_PORT", "value": str(submission)},
            {"name": "CONNECTORS_MAX_MESSAGE_BYTES", "value": str(config.smtp_max_message_bytes)},
            {"name": "CONNECTORS_MAX_MESSAGES_PER_SENDER",
             "value": str(config.smtp_max_messages_per_sender)},
            {"name": "CONNECTORS_MAX_MESSAGES_PER_CLIENT",
             "value": str(config.smtp_max_messages_per_client)},
        ]
    if protocol in TLS_PROTOCOLS:
        env += [{"name": "CONNECTORS_TLS_CERT_FILE", "value": f"{TLS_DIR}/tls.crt"},
                {"name": "CONNECTORS_TLS_KEY_FILE", "value": f"{TLS_DIR}/tls.key"},
                {"name": "CONNECTORS_REQUIRE_TLS", "value": "true"}]
    return ["listen", protocol], env


def _container_ports(protocol: str, config: OperatorConfig) -> list[dict[str, Any]]:
    ports = [{"name": protocol, "containerPort": config.ports[protocol].container,
              "protocol": "TCP"}]
    if protocol == "ftp":
        low, high = config.ftp_passive_ports
        ports += [{"name": f"pasv-{p}", "containerPort": p, "protocol": "TCP"}
                  for p in range(low, high + 1)]
    if protocol == "smtp" and config.smtp_submission:
        ports.append({"name": "submission", "containerPort": config.ports["submission"].container,
                      "protocol": "TCP"})
    return ports


def _service_port(name: str, config: OperatorConfig) -> dict[str, Any]:
    """One well-known port of the Service, onto the listener's high port in the pod."""
    port: dict[str, Any] = {"name": name, "port": config.ports[name].service,
                            "targetPort": config.ports[name].container, "protocol": "TCP"}
    if config.service_type(_protocol_of_port(name)) == "NodePort" \
            and name in config.listener_node_ports:
        port["nodePort"] = config.listener_node_ports[name]
    return port


def _protocol_of_port(name: str) -> str:
    """The listener a named port belongs to: the submission port is SMTP's."""
    return "smtp" if name == "submission" else name


def listener_deployment(namespace: str, protocol: str, config: OperatorConfig,
                        plan: AccountPlan) -> dict[str, Any]:
    name = listener_name(protocol)
    labels = listener_labels(protocol)
    args, env = _listener_args(protocol, config)
    port = config.ports[protocol].container
    volumes: list[dict[str, Any]] = [
        {"name": "accounts", "secret": {"secretName": secret_name(protocol), "defaultMode": 0o440}},
        data_volume(config),
        tmp_volume(),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "accounts", "mountPath": ACCOUNTS_DIR, "readOnly": True},
        {"name": "data", "mountPath": "/data"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if protocol == "sftp":
        volumes.append({"name": "hostkey",
                        "secret": {"secretName": HOST_KEY_SECRET, "defaultMode": 0o440}})
        mounts.append({"name": "hostkey", "mountPath": HOST_KEY_DIR, "readOnly": True})
    if protocol in TLS_PROTOCOLS:
        volumes.append({"name": "tls", "secret": {"secretName": tls_secret_name(config),
                                                  "defaultMode": 0o440}})
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    probe = {"tcpSocket": {"port": port}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "ownerReferences": _owner_references(plan.owners)},
        "spec": {
            "replicas": config.listener_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": config.listener_service_account,
                    **image_pull_secrets(config),
                    "securityContext": pod_security_context(),
                    "volumes": volumes,
                    "containers": [{
                        "name": "listener",
                        "image": config.image,
                        "imagePullPolicy": config.image_pull_policy,
                        "args": args,
                        "env": env,
                        "ports": _container_ports(protocol, config),
                        "volumeMounts": mounts,
                        "securityContext": container_security_context(),
                        "resources": resources(config),
                        "readinessProbe": {**probe, "periodSeconds": 10},
                        "livenessProbe": {**probe, "initialDelaySeconds": 10,
                                          "periodSeconds": 20, "failureThreshold": 3},
                    }],
                },
            },
        },
    }


def listener_service(namespace: str, protocol: str, config: OperatorConfig,
                     plan: AccountPlan) -> dict[str, Any]:
    service_type = config.service_type(protocol)
    node_port = service_type == "NodePort"
    ports = [_service_port(protocol, config)]
    if protocol == "smtp" and config.smtp_submission:
        ports.append(_service_port("submission", config))
    if protocol == "ftp":
        # Each passive port by itself: a Service has no port ranges, and a data
        # connection to a port it does not expose would hang. On a NodePort
        # Service the node port is the same number the listener announces.
        low, high = config.ftp_passive_ports
        ports += [{"name": f"pasv-{p}", "port": p, "targetPort": p, "protocol": "TCP",
                   **({"nodePort": p} if node_port else {})}
                  for p in range(low, high + 1)]
    spec: dict[str, Any] = {"type": service_type, "selector": listener_labels(protocol),
                            "ports": ports}
    if service_type == "LoadBalancer" and config.listener_source_ranges:
        spec["loadBalancerSourceRanges"] = list(config.listener_source_ranges)
    if service_type in ("NodePort", "LoadBalancer") and config.listener_external_traffic_policy:
        spec["externalTrafficPolicy"] = config.listener_external_traffic_policy
    metadata: dict[str, Any] = {"name": listener_name(protocol), "namespace": namespace,
                                "labels": listener_labels(protocol),
                                "ownerReferences": _owner_references(plan.owners)}
    if config.listener_service_annotations:
        metadata["annotations"] = dict(config.listener_service_annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _public_port(name: str, config: OperatorConfig) -> int:
    """The port partners dial: the node port when they come through a node."""
    port = config.ports[name].service
    if config.listener_external_host and config.service_type(_protocol_of_port(name)) == "NodePort":
        return config.listener_node_ports.get(name, port)
    return port


def endpoint(namespace: str, connection: str, spec: ConnectionSpec, username: str,
             config: OperatorConfig, host_key_fingerprint: str | None) -> dict[str, Any]:
    """Where the partner connects and as whom. For Email: the address to send to,
    the host and port where mail servers deliver (the MX), and the submission port
    for partners who log in with the Credential."""
    protocol = protocol_of(spec)
    host = config.listener_external_host or f"{listener_name(protocol)}.{namespace}.svc"
    result: dict[str, Any] = {"protocol": protocol, "host": host,
                              "port": _public_port(protocol, config), "username": username}
    if protocol == "smtp":
        result["address"] = f"{connection}@{config.email_domain}"
        if config.smtp_submission:
            result["submissionPort"] = _public_port("submission", config)
    else:
        result["folder"] = f"/{spec.folder}/" if spec.folder else "/"
    if protocol == "sftp" and host_key_fingerprint:
        result["hostKeyFingerprint"] = host_key_fingerprint
    return result


def listener_identity(namespace: str, config: OperatorConfig) -> list[dict[str, Any]]:
    """The listener's ServiceAccount, bound to the chart's ClusterRole of the same name,
    which lets it report transfers (patch connections/status, create events) and no more."""
    name = config.listener_service_account
    labels = base_labels("listener")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": namespace, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": namespace, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]


def account_fingerprints(table: AccountTable) -> dict[str, str]:
    """Per Connection, a digest of its account as the table holds it: the listener
    serves the Connection as configured only if it has loaded a table in which
    this digest is the same."""
    return {a.connection: table_digest(a.model_dump_json(by_alias=True))
            for a in table.accounts}


def state_configmap(namespace: str) -> dict[str, Any]:
    """Where each listener pod says which account table it serves (readiness.py).
    Made once and never overwritten by the operator: the pods write its data."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": STATE_CONFIGMAP, "namespace": namespace,
                     "labels": {**base_labels("listener"), LABEL_LISTENER: "state"}},
        "data": {},
    }
