"""A listener's metrics (`connectors listen`), served on --metrics-port (9090).

Every series has the label `namespace`: the listener's own (env
CONNECTORS_NAMESPACE, set by `configure()`), empty outside a cluster.
Per-Connection series add `connection`; a login is counted per protocol
only, since a failed one has no Connection.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# What the LoginGate tells apart (listeners/core/login_gate.py).
LOGIN_RESULTS = ("success", "bad_password", "bad_key", "unknown_user", "suspended",
                 "banned", "too_many_sessions")

LOGINS = Counter(
    "connectors_listener_logins_total",
    "Logins by result: success, bad_password, bad_key, unknown_user, suspended, banned, "
    "too_many_sessions",
    ["namespace", "protocol", "result"])
BANS = Counter(
    "connectors_listener_bans_total",
    "Bans started by the brute-force defender (an address or a username)",
    ["namespace", "protocol"])
SESSIONS = Gauge(
    "connectors_listener_sessions",
    "Logged-in sessions open now",
    ["namespace", "protocol"])
CONNECTIONS = Gauge(
    "connectors_listener_connections",
    "Connections open now, logged in or not (capped by --max-connections)",
    ["namespace", "protocol"])
UNAUTHENTICATED = Gauge(
    "connectors_listener_unauthenticated_connections",
    "Connections open now that have not logged in yet (capped by --max-unauthenticated)",
    ["namespace", "protocol"])
CONNECTIONS_REFUSED = Counter(
    "connectors_listener_connections_refused_total",
    "Connections turned away before a login, by reason: too_many_connections, "
    "too_many_unauthenticated, login_grace_expired",
    ["namespace", "protocol", "reason"])
UPLOADS = Counter(
    "connectors_listener_uploads_total",
    "SFTP and FTP uploads: result landed, or refused with the reason",
    ["namespace", "connection", "protocol", "result", "reason"])
EMAILS = Counter(
    "connectors_listener_emails_total",
    "Messages per recipient Connection: result accepted, or refused with the reason",
    ["namespace", "connection", "protocol", "result", "reason"])
FILES_LANDED = Counter(
    "connectors_listener_files_landed_total",
    "Files landed: uploads and email attachments",
    ["namespace", "connection", "protocol"])
DOWNLOADS = Counter(
    "connectors_listener_downloads_total",
    "Complete downloads (Outbound Pull)",
    ["namespace", "connection", "protocol"])
BYTES_RECEIVED = Counter(
    "connectors_listener_received_bytes_total",
    "Bytes of the files landed",
    ["namespace", "connection", "protocol"])
BYTES_SENT = Counter(
    "connectors_listener_sent_bytes_total",
    "Bytes of the files downloaded in full",
    ["namespace", "connection", "protocol"])
LANDING_SECONDS = Histogram(
    "connectors_listener_landing_seconds",
    "From the end of a file's data to the file landed (synced, renamed, its receipt written)",
    ["namespace", "protocol"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

_namespace = ""


def configure(namespace: str | None) -> None:
    """The namespace every series is labelled with."""
    global _namespace
    _namespace = namespace or ""


def login(protocol: str, result: str) -> None:
    LOGINS.labels(_namespace, protocol, result).inc()


def ban(protocol: str) -> None:
    BANS.labels(_namespace, protocol).inc()


def session_opened(protocol: str) -> None:
    SESSIONS.labels(_namespace, protocol).inc()


def session_closed(protocol: str) -> None:
    SESSIONS.labels(_namespace, protocol).dec()


def connections(protocol: str, total: int, unauthenticated: int) -> None:
    CONNECTIONS.labels(_namespace, protocol).set(total)
    UNAUTHENTICATED.labels(_namespace, protocol).set(unauthenticated)


def connection_refused(protocol: str, reason: str) -> None:
    CONNECTIONS_REFUSED.labels(_namespace, protocol, reason).inc()


def landed(connection: str, protocol: str, files: int, size: int) -> None:
    """Files landed for one Connection: one upload, or one message's attachments."""
    if protocol == "smtp":
        EMAILS.labels(_namespace, connection, protocol, "accepted", "").inc()
    else:
        UPLOADS.labels(_namespace, connection, protocol, "landed", "").inc(files)
    FILES_LANDED.labels(_namespace, connection, protocol).inc(files)
    BYTES_RECEIVED.labels(_namespace, connection, protocol).inc(size)


def refused(connection: str, protocol: str, reason: str) -> None:
    counter = EMAILS if protocol == "smtp" else UPLOADS
    counter.labels(_namespace, connection, protocol, "refused", reason).inc()


def sent(connection: str, protocol: str, size: int) -> None:
    DOWNLOADS.labels(_namespace, connection, protocol).inc()
    BYTES_SENT.labels(_namespace, connection, protocol).inc(size)


def landing_time(protocol: str, seconds: float) -> None:
    LANDING_SECONDS.labels(_namespace, protocol).observe(seconds)
