"""`connectors listen sftp|ftp|smtp`: serve every partner-initiated Connection of a
namespace, one account each, from the account table the operator writes.

Every option can also be set from the environment variable shown in its help,
which is how the operator's Deployment configures the listener.

What the Deployment mounts: the account table's shard Secrets
(`connectors-accounts-<protocol>-<NN>`, key accounts.json, each optional) as the
files accounts-<NN>.json of /etc/connectors/accounts; for sftp the namespace's host
key Secret at /etc/connectors/hostkey (key ssh_host_ed25519_key, generated once,
never rotated silently); for ftp/smtp a kubernetes.io/tls Secret (tls.crt,
tls.key): FTP without it is plain FTP, and SMTP without it offers no STARTTLS
and accepts no login at all, since a password never crosses the network in
clear text (the operator always mounts one); the data volume at /data.
Readiness and liveness: a tcpSocket probe on the port. SMTP listens on two
ports: `--port` takes mail from partners' mail servers like any MX (no login),
`--submission-port` from partners who log in with their Credential. For FTP
behind a Service, expose the passive range and set the masquerade address to
the Service's external address. Set
CONNECTORS_NAMESPACE (downward API) to report transfers to the Connections; the
service account then needs `patch` on connections/status and `create` on events.
Metrics are served on `--metrics-port` (9090; connectors/metrics/listener.py);
every login, transfer, refusal and ban is an audit event (connectors/logs.py).
Connections are capped per process before any login (`--max-connections`,
`--max-unauthenticated`, `--login-grace-seconds`; core/capacity.py), so that a
flood of them cannot get the pod OOM-killed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from connectors import logs
from connectors.events import kubernetes_api_client
from connectors.landing import receive
from connectors.landing.receive import discard_unfinished, landing_area
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.capacity import ConnectionCap, ConnectionLimits
from connectors.listeners.core.defender import Defender, DefenderSettings
from connectors.listeners.core.report import TransferReporter, reporter_from_environment
from connectors.listeners.core.state import StateReporter, state_reporter_from_environment
from connectors.listeners.core.tls import CertificateReloader
from connectors.metrics import listener as listener_metrics
from connectors.metrics.server import LISTENER_METRICS_PORT, add_metrics_options, serve_metrics
from connectors.options import env_flag, env_option
from connectors.ports import (
    LISTENER_CONTAINER_PORTS,
    LISTENER_PROTOCOLS,
    SUBMISSION_CONTAINER_PORT,
)

log = logging.getLogger("connectors.listen")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", choices=LISTENER_PROTOCOLS, help="which listener to run")
    option = functools.partial(env_option, parser)
    option("--address", env="CONNECTORS_LISTEN_ADDRESS", default="0.0.0.0",
           help="address to bind")
    option("--port", env="CONNECTORS_LISTEN_PORT", type=int,
           help="port to bind (default: "
           + ", ".join(f"{p} {n}" for p, n in LISTENER_CONTAINER_PORTS.items()) + ")")
    option("--accounts-file", env="CONNECTORS_ACCOUNTS_FILE",
           default="/etc/connectors/accounts",
           help="the account table: a folder of shard files accounts-NN.json (the "
                "mounted Secrets), or one table file")
    option("--data-root", env="CONNECTORS_DATA_ROOT", default="/data",
           help="the data volume; an account's home is <data-root>/<home>")
    option("--host-key-file", env="CONNECTORS_HOST_KEY_FILE",
           default="/etc/connectors/hostkey/ssh_host_ed25519_key",
           help="sftp: the SSH host private key")
    option("--ssh-ciphers", env="CONNECTORS_SSH_CIPHERS",
           help="sftp: comma-separated ciphers to offer, in order (default: paramiko's list)")
    option("--tls-cert-file", env="CONNECTORS_TLS_CERT_FILE",
           help="ftp, smtp: TLS certificate (PEM); enables FTPS / STARTTLS")
    option("--tls-key-file", env="CONNECTORS_TLS_KEY_FILE",
           help="ftp, smtp: TLS private key (PEM)")
    env_flag(parser, "--require-tls", env="CONNECTORS_REQUIRE_TLS",
             help="ftp: refuse login before TLS and data without PROT P, except for logins "
                  "whose Connections all allow plain FTP; smtp: refuse mail before STARTTLS on the "
                  "submission port (mail servers on --port may still deliver in clear text, "
                  "as to any MX) (needs a certificate)")
    option("--passive-ports", env="CONNECTORS_PASSIVE_PORTS",
           help="ftp: passive port range FIRST-LAST, e.g. 30000-30009")
    option("--masquerade-address", env="CONNECTORS_MASQUERADE_ADDRESS",
           help="ftp: address announced in PASV replies (the Service's external address)")
    option("--domain", env="CONNECTORS_EMAIL_DOMAIN", default="localhost",
           help="smtp: mail domain; a Connection's address is <connection>@<domain>")
    option("--max-message-bytes", env="CONNECTORS_MAX_MESSAGE_BYTES", type=int,
           default=25 * 1024 * 1024, help="smtp: largest message accepted")
    option("--max-parts", env="CONNECTORS_MAX_PARTS", type=int, default=100,
           help="smtp: most MIME parts in one message")
    option("--submission-port", env="CONNECTORS_SUBMISSION_PORT", type=int,
           default=SUBMISSION_CONTAINER_PORT,
           help="smtp: port where partners log in with their Credential (AUTH after "
                "STARTTLS) to send; 0: none, only mail servers delivering on --port")
    option("--max-messages-per-sender", env="CONNECTORS_MAX_MESSAGES_PER_SENDER", type=int,
           default=60, help="smtp, mail servers on --port: messages per minute from one "
           "envelope sender; more are refused with 450 so that the server retries later "
           "(0: no limit)")
    option("--max-messages-per-client", env="CONNECTORS_MAX_MESSAGES_PER_CLIENT", type=int,
           default=120, help="smtp, mail servers on --port: messages per minute from one "
           "client address (behind a Service without externalTrafficPolicy Local, every "
           "client has a node's address) (0: no limit)")
    option("--tls-poll-seconds", env="CONNECTORS_TLS_POLL_SECONDS", type=float, default=30.0,
           help="ftp, smtp: how often the certificate files are checked for a renewal")
    option("--idle-timeout", env="CONNECTORS_IDLE_TIMEOUT", type=float, default=600.0,
           help="seconds without activity before a session is closed")
    option("--max-sessions-per-account", env="CONNECTORS_MAX_SESSIONS_PER_ACCOUNT", type=int,
           default=10, help="concurrent sessions per account (0: no limit)")
    option("--max-connections", env="CONNECTORS_MAX_CONNECTIONS", type=int,
           default=ConnectionLimits.max_connections,
           help="connections at once, logged in or not (SMTP: both ports); more are "
                "refused before login with an answer to try again later (0: no limit)")
    option("--max-unauthenticated", env="CONNECTORS_MAX_UNAUTHENTICATED", type=int,
           default=ConnectionLimits.max_unauthenticated,
           help="connections at once that have not logged in yet, at most "
                "--max-connections: idle half-open connections cannot take every place "
                "(0: no limit)")
    option("--login-grace-seconds", env="CONNECTORS_LOGIN_GRACE_SECONDS", type=float,
           default=ConnectionLimits.login_grace_seconds,
           help="a connection that has not logged in this long after it opened is closed "
                "(0: never)")
    option("--ban-address-failures", env="CONNECTORS_BAN_ADDRESS_FAILURES", type=int,
           default=10, help="failed logins from one address that trigger a ban (0: never)")
    option("--ban-user-failures", env="CONNECTORS_BAN_USER_FAILURES", type=int, default=10,
           help="failed logins for one username that trigger a ban (0: never)")
    option("--ban-window", env="CONNECTORS_BAN_WINDOW", type=float, default=300.0,
           help="seconds over which failures are counted")
    option("--ban-seconds", env="CONNECTORS_BAN_SECONDS", type=float, default=900.0,
           help="how long a ban lasts")
    option("--accounts-poll-seconds", env="CONNECTORS_ACCOUNTS_POLL_SECONDS", type=float,
           default=2.0, help="how often the account table is re-read")
    option("--log-level", env="CONNECTORS_LOG_LEVEL", default="INFO", help="log level")
    logs.add_log_format_option(parser)
    add_metrics_options(parser, LISTENER_METRICS_PORT)


@dataclass
class Common:
    """What every listener needs, built from the arguments."""

    accounts: AccountsFile
    defender: Defender
    reporter: TransferReporter
    data_root: Path
    address: str
    port: int
    # The listener's connection cap: one per process (SMTP's two ports share it).
    cap: ConnectionCap
    state: StateReporter | None = None


def build_common(args: argparse.Namespace) -> Common:
    # One API client for the state and the transfer reports.
    api_client = kubernetes_api_client() if os.environ.get("CONNECTORS_NAMESPACE") else None
    state = (state_reporter_from_environment(args.protocol, api_client)
             if os.environ.get("CONNECTORS_STATE_CONFIGMAP") else None)
    accounts = AccountsFile(Path(args.accounts_file), poll_seconds=args.accounts_poll_seconds,
                            on_load=state.loaded if state else None)
    defender = Defender(DefenderSettings(
        max_failures_per_address=args.ban_address_failures,
        max_failures_per_user=args.ban_user_failures,
        window_seconds=args.ban_window,
        ban_seconds=args.ban_seconds,
    ))
    port = args.port if args.port is not None else LISTENER_CONTAINER_PORTS[args.protocol]
    return Common(accounts, defender, reporter_from_environment(args.protocol, api_client),
                  Path(args.data_root),
                  args.address, port, ConnectionCap(args.protocol, connection_limits(args)),
                  state)


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    return ConnectionLimits(max_connections=args.max_connections,
                            max_unauthenticated=args.max_unauthenticated,
                            login_grace_seconds=args.login_grace_seconds)


def clean_temporaries(common: Common, stale_after: float) -> None:
    """Finishes what a crash left: removes half-written temporaries (no upload
    is in flight at start) and writes the receipt of a file that landed just
    before the crash without one."""
    for account in common.accounts.accounts():
        area = landing_area(common.data_root, account)
        removed = area.remove_stale_temporaries(stale_after)
        if removed:
            log.info("removed %d stale temporary files of %s", removed, account.connection)
        restored = area.restore_receipts()
        if restored:
            log.info("wrote %d missing receipts of %s", restored, account.connection)


def sweep_temporaries(common: Common, stale_after: float, stop: threading.Event) -> None:
    while not stop.wait(min(stale_after, 300.0)):
        for account in common.accounts.accounts():
            try:
                landing_area(common.data_root, account).remove_stale_temporaries(stale_after)
            except OSError as err:
                log.warning("cannot sweep the temporaries of %s: %s", account.connection,
                            err.strerror or type(err).__name__)


def on_termination(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format, sys.stderr)
    # paramiko logs every negotiation step at INFO; keep its warnings only.
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    # A kubelet tcpSocket probe connects and hangs up without a word, every few
    # seconds; paramiko's transport reports each one as an ERROR with a 30-line
    # traceback. The SFTP server logs how every connection ended in one line, so
    # the transport's own error lines add nothing but noise.
    logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)
    # aiosmtpd logs every command line at INFO, including the lines of an AUTH
    # LOGIN exchange: keep it to warnings so that no credential reaches a log.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    if args.require_tls and not args.tls_cert_file:
        log.error("--require-tls needs --tls-cert-file and --tls-key-file")
        return 2
    problem = connection_limits(args).problem()
    if problem is not None:
        log.error("--max-connections, --max-unauthenticated, --login-grace-seconds: %s",
                  problem)
        return 2
    namespace = os.environ.get("CONNECTORS_NAMESPACE", "")
    listener_metrics.configure(namespace)
    logs.set_audit_defaults(namespace=namespace)
    receive.landing_observer = functools.partial(listener_metrics.landing_time, args.protocol)
    try:
        metrics_server = serve_metrics(args)
    except OSError as err:
        log.error("cannot serve metrics on %s:%d: %s", args.metrics_address, args.metrics_port,
                  err.strerror or type(err).__name__)
        return 2
    try:
        return serve(args)
    finally:
        if metrics_server is not None:
            metrics_server.close()


def serve(args: argparse.Namespace) -> int:
    common = build_common(args)
    # An upload that wrote nothing for the idle timeout has been dropped: its
    # temporary file goes, at start and then every few minutes.
    stale_after = args.idle_timeout + 60
    clean_temporaries(common, stale_after)
    sweeping = threading.Event()
    threading.Thread(target=sweep_temporaries, args=(common, stale_after, sweeping),
                     name="sweep", daemon=True).start()
    common.accounts.start()
    try:
        runner = {"sftp": run_sftp, "ftp": run_ftp, "smtp": run_smtp}[args.protocol]
        return runner(args, common)
    finally:
        sweeping.set()
        # The servers closed their connections; the uploads those carried
        # must not outlive the pod as temporary files the next pod would only
        # sweep after the idle timeout.
        removed = discard_unfinished(wait_seconds=5.0)
        if removed:
            log.info("removed %d temporary files of uploads cut by the shutdown", removed)
        common.accounts.stop()
        if common.state is not None:
            common.state.close()
        common.reporter.close()


def run_sftp(args: argparse.Namespace, common: Common) -> int:
    from connectors.listeners.sftp import server as sftp_server
    from connectors.listeners.sftp.auth import SftpContext, SftpSettings
    from connectors.listeners.sftp.protocol import check_ciphers

    try:
        host_key = sftp_server.load_host_key(Path(args.host_key_file))
    except (OSError, ValueError) as err:
        # The file name only: the key itself must never reach a log.
        log.error("cannot read the host key %s: %s", args.host_key_file, type(err).__name__)
        return 2
    try:
        ciphers = (check_ciphers(tuple(args.ssh_ciphers.split(",")))
                   if args.ssh_ciphers else None)
    except ValueError as err:
        log.error("bad --ssh-ciphers: %s", err)
        return 2
    context = SftpContext(
        accounts=common.accounts, data_root=common.data_root, defender=common.defender,
        reporter=common.reporter, host_key=host_key,
        settings=SftpSettings(
            idle_timeout=args.idle_timeout,
            max_sessions_per_account=args.max_sessions_per_account,
            ciphers=ciphers,
            limits=common.cap.limits,
        ),
    )
    listener = sftp_server.SftpListener(context, common.address, common.port, common.cap)
    on_termination(listener.request_stop)
    log.info("sftp listening on %s:%d", common.address, listener.port)
    listener.serve_forever()
    listener.shutdown()
    return 0


def run_ftp(args: argparse.Namespace, common: Common) -> int:
    from connectors.listeners.ftp import server as ftp_server

    try:
        passive = ftp_server.parse_port_range(args.passive_ports)
    except ValueError as err:
        log.error("bad --passive-ports: %s", err)
        return 2
    settings = ftp_server.FtpSettings(
        tls_cert_file=Path(args.tls_cert_file) if args.tls_cert_file else None,
        tls_key_file=Path(args.tls_key_file) if args.tls_key_file else None,
        require_tls=args.require_tls,
        passive_ports=passive,
        masquerade_address=args.masquerade_address,
        idle_timeout=args.idle_timeout,
        max_sessions_per_account=args.max_sessions_per_account,
        limits=common.cap.limits,
    )
    server = ftp_server.build_server(common.accounts, common.data_root, common.defender,
                                     common.reporter, settings, common.address, common.port,
                                     common.cap)
    stop = threading.Event()
    on_termination(stop.set)
    reloader = certificate_reloader(args)
    if reloader is not None:
        reloader.subscribe(lambda: ftp_server.renew_certificate(server, settings))
        # Checked in the server's own loop: the one thread that makes connections.
        server.ioloop.call_every(reloader.poll_seconds, reloader.check)
    log.info("ftp listening on %s:%d", common.address, server.address[1])
    ftp_server.serve_until(server, stop)
    return 0


def run_smtp(args: argparse.Namespace, common: Common) -> int:
    from connectors.listeners.smtp import server as smtp_server

    settings = smtp_server.SmtpSettings(
        domain=args.domain,
        tls_cert_file=Path(args.tls_cert_file) if args.tls_cert_file else None,
        tls_key_file=Path(args.tls_key_file) if args.tls_key_file else None,
        require_tls=args.require_tls,
        max_message_bytes=args.max_message_bytes,
        max_parts=args.max_parts,
        idle_timeout=args.idle_timeout,
        max_sessions_per_account=args.max_sessions_per_account,
        max_messages_per_sender=args.max_messages_per_sender,
        max_messages_per_client=args.max_messages_per_client,
        limits=common.cap.limits,
    )
    if args.submission_port == common.port:
        log.error("--submission-port must differ from --port (%d)", common.port)
        return 2
    stop = threading.Event()
    on_termination(stop.set)
    smtp_server.serve_until(common.accounts, common.data_root, common.defender,
                            common.reporter, settings, common.address, common.port,
                            args.submission_port, stop, certificate_reloader(args),
                            common.cap)
    return 0


def certificate_reloader(args: argparse.Namespace) -> CertificateReloader | None:
    """Watches the mounted certificate for renewals (cert-manager's, say)."""
    if not args.tls_cert_file:
        return None
    cert = Path(args.tls_cert_file)
    return CertificateReloader(cert, Path(args.tls_key_file) if args.tls_key_file else cert,
                               poll_seconds=args.tls_poll_seconds)
