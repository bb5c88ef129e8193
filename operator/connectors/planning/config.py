"""The operator's configuration: everything a plan needs besides the resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ports import (
    LISTENER_CONTAINER_PORTS,
    LISTENER_PROTOCOLS,
    LISTENER_SERVICE_PORTS,
    SUBMISSION_CONTAINER_PORT,
    SUBMISSION_SERVICE_PORT,
)

MANAGED_BY = "connectors-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_CONNECTION = "connectors.dev/connection"
LABEL_CREDENTIAL = "connectors.dev/credential"
LABEL_LISTENER = "connectors.dev/listener"
LABEL_COMPONENT = "app.kubernetes.io/component"
ANNOTATION_ROTATE = "connectors.dev/rotate"
ANNOTATION_ROTATED_FOR = "connectors.dev/rotated-for"

# The listener protocols, by the name the controller knows them.
PROTOCOLS = LISTENER_PROTOCOLS


@dataclass(frozen=True)
class ListenerPorts:
    """Container port and Service port of one listener protocol."""

    container: int
    service: int


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "ghcr.io/connectors-dev/connectors:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    # Secrets (in each namespace) for a private registry, given to listener
    # and transfer pods as the chart gives them to the operator's.
    image_pull_secrets: tuple[str, ...] = ()
    # The namespace's data volume: a PersistentVolumeClaim the operator ensures.
    data_claim: str = "connectors-data"
    data_size: str = "10Gi"
    data_storage_class: str | None = None
    data_access_mode: str = "ReadWriteMany"
    # Inbound Email Push: each Connection receives at <connection>@<email_domain>.
    email_domain: str = "connectors.local"
    # Listeners run as non-root, so they bind high ports in the pod; the
    # Service maps the well-known ports onto them. "submission" is the SMTP
    # listener's second port (login after STARTTLS); "smtp" is its mail
    # exchanger port, where partners' mail servers deliver without a login.
    ports: dict[str, ListenerPorts] = field(default_factory=lambda: {
        **{protocol: ListenerPorts(LISTENER_CONTAINER_PORTS[protocol],
                                   LISTENER_SERVICE_PORTS[protocol])
           for protocol in LISTENER_PROTOCOLS},
        "submission": ListenerPorts(SUBMISSION_CONTAINER_PORT, SUBMISSION_SERVICE_PORT),
    })
    # The SMTP listener's submission port, for partners who send with the
    # Credential; off: only mail servers delivering like to any MX (port 25).
    smtp_submission: bool = True
    # SMTP limits: the largest message, and messages a minute per envelope
    # sender and per client address on port 25 (0: no limit).
    smtp_max_message_bytes: int = 25 * 1024 * 1024
    smtp_max_messages_per_sender: int = 60
    smtp_max_messages_per_client: int = 120
    # FTP passive data ports: the Service exposes each one, so the listener must
    # never hand out a port outside this range.
    ftp_passive_ports: tuple[int, int] = (30100, 30104)
    ftp_masquerade_address: str | None = None
    listener_service_type: str = "ClusterIP"
    # Per protocol ("sftp", "ftp", "smtp"): a Service type other than the one above.
    listener_service_types: dict[str, str] = field(default_factory=dict)
    # On every listener Service: annotations (a cloud load balancer's settings),
    # the addresses a LoadBalancer admits, and externalTrafficPolicy ("Local" keeps
    # the partner's address, so bans and allowed senders see it).
    listener_service_annotations: dict[str, str] = field(default_factory=dict)
    listener_source_ranges: tuple[str, ...] = ()
    listener_external_traffic_policy: str | None = None
    # Listener pods per protocol: all serve the same accounts and land on the
    # same volume (its access mode must allow that: ReadWriteMany, or one node).
    listener_replicas: int = 1
    # Each listener pod's connection cap (listeners/core/capacity.py): connections
    # at once, those of them not logged in yet, and how long one may stay without
    # a login (0: no limit).
    listener_max_connections: int = 100
    listener_max_unauthenticated: int = 30
    listener_login_grace_seconds: float = 30.0
    # A listener pod's memory. Measured (bench/listener_memory.py, SFTP, glibc
    # with MALLOC_ARENA_MAX=2 as the pods run it): 58 MiB started, 75 MiB with
    # the second malloc arena, then 360 to 750 KiB per idle logged-in session;
    # uploading at once, 20 sessions peaked at 171 MiB, 50 at 230 MiB, 90 at
    # 343 MiB (about 3.2 MiB a session). So the request is the listener with a
    # few sessions, and the limit holds the default 100 connections all
    # uploading (about 380 MiB) with a third to spare.
    listener_memory_request: str = "96Mi"
    listener_memory_limit: str = "512Mi"
    # NodePort Services: fixed node ports per protocol, and "submission" for the
    # SMTP submission port (else Kubernetes picks);
    # FTP passive ports always keep their own number as node port, since the
    # listener announces that number in its PASV replies.
    listener_node_ports: dict[str, int] = field(default_factory=dict)
    # Where partners reach the listeners from outside (a node's address, a load
    # balancer's name): shown in status.endpoint instead of the Service's name.
    listener_external_host: str | None = None
    # FTPS and SMTP STARTTLS: a kubernetes.io/tls Secret of the platform's (from
    # cert-manager, say) in each namespace; None: the operator makes a
    # self-signed one per namespace, once.
    listener_tls_secret: str | None = None
    listener_service_account: str = "connectors-listener"
    # Outbound Email Push: the platform's relay.
    smtp_relay: str | None = None
    # How long the submission history keeps a checked file (the processor purges).
    submission_retention_days: float = 90.0
    smtp_from: str | None = None
    # Listeners and processors serve Prometheus metrics on their port named
    # `metrics` (connectors/metrics/server.py), and log as the operator does.
    workload_metrics: bool = True
    log_format: str = "text"
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str = "1"
    memory_limit: str = "256Mi"

    def service_type(self, protocol: str) -> str:
        return self.listener_service_types.get(protocol, self.listener_service_type)
