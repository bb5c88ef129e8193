"""`connectors listen sftp|ftp|smtp`: serve every partner-initiated Connection of a
namespace, one account each, from the account table the operator writes.

Every option can also be set from the environment variable shown in its help,
which is how the operator's Deployment configures the listener.

What the Deployment mounts: the account Secret (`connectors-accounts-<protocol>`,
key accounts.json) at /etc/connectors/accounts; for sftp the namespace's host
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
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from connectors.landing.receive import discard_unfinished, landing_area
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender, DefenderSettings
from connectors.listeners.core.report import (
    TransferReporter,
    kubernetes_api_client,
    reporter_from_environment,
)
from connectors.listeners.core.state import StateReporter, state_reporter_from_environment

log = logging.getLogger("connectors.listen")

PROTOCOLS = ("sftp", "ftp", "smtp")
DEFAULT_PORTS = {"sftp": 2022, "ftp": 2121, "smtp": 2525}
# Behind the Service's port 587; high, since the listener runs as non-root.
DEFAULT_SUBMISSION_PORT = 2587
_TRUE = {"1", "true", "yes", "on"}


def _env(name: str, fallback: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else fallback


def _option(parser: argparse.ArgumentParser, flag: str, env: str, help_text: str,
            default: str | None = None, kind: Callable[[str], object] = str) -> None:
    shown = f" (default: {default})" if default is not None else ""
    parser.add_argument(flag, type=kind, default=_env(env, default),
                        help=f"{help_text}{shown} [env {env}]")


def _flag(parser: argparse.ArgumentParser, flag: str, env: str, help_text: str) -> None:
    parser.add_argument(flag, action="store_true",
                        default=(_env(env, "") or "").lower() in _TRUE,
                        help=f"{help_text} [env {env}=true]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", choices=PROTOCOLS, help="which listener to run")
    _option(parser, "--address", "CONNECTORS_LISTEN_ADDRESS", "address to bind", "0.0.0.0")
    _option(parser, "--port", "CONNECTORS_LISTEN_PORT",
            "port to bind (default: sftp 2022, ftp 2121, smtp 2525)", kind=int)
    _option(parser, "--accounts-file", "CONNECTORS_ACCOUNTS_FILE",
            "the account table (accounts.json from the Secret)",
            "/etc/connectors/accounts/accounts.json")
    _option(parser, "--data-root", "CONNECTORS_DATA_ROOT",
            "the data volume; an account's home is <data-root>/<home>", "/data")
    _option(parser, "--host-key-file", "CONNECTORS_HOST_KEY_FILE",
            "sftp: the SSH host private key", "/etc/connectors/hostkey/ssh_host_ed25519_key")
    _option(parser, "--ssh-ciphers", "CONNECTORS_SSH_CIPHERS",
            "sftp: comma-separated ciphers to offer, in order (default: paramiko's list)")
    _option(parser, "--tls-cert-file", "CONNECTORS_TLS_CERT_FILE",
            "ftp, smtp: TLS certificate (PEM); enables FTPS / STARTTLS")
    _option(parser, "--tls-key-file", "CONNECTORS_TLS_KEY_FILE",
            "ftp, smtp: TLS private key (PEM)")
    _flag(parser, "--require-tls", "CONNECTORS_REQUIRE_TLS",
          "ftp: refuse login before TLS; smtp: refuse mail before STARTTLS on the "
          "submission port (mail servers on --port may still deliver in clear text, "
          "as to any MX) (needs a certificate)")
    _option(parser, "--passive-ports", "CONNECTORS_PASSIVE_PORTS",
            "ftp: passive port range FIRST-LAST, e.g. 30000-30009")
    _option(parser, "--masquerade-address", "CONNECTORS_MASQUERADE_ADDRESS",
            "ftp: address announced in PASV replies (the Service's external address)")
    _option(parser, "--domain", "CONNECTORS_EMAIL_DOMAIN",
            "smtp: mail domain; a Connection's address is <connection>@<domain>", "localhost")
    _option(parser, "--max-message-bytes", "CONNECTORS_MAX_MESSAGE_BYTES",
            "smtp: largest message accepted", str(25 * 1024 * 1024), kind=int)
    _option(parser, "--max-parts", "CONNECTORS_MAX_PARTS",
            "smtp: most MIME parts in one message", "100", kind=int)
    _option(parser, "--submission-port", "CONNECTORS_SUBMISSION_PORT",
            "smtp: port where partners log in with their Credential (AUTH after STARTTLS) "
            "to send; 0: none, only mail servers delivering on --port",
            str(DEFAULT_SUBMISSION_PORT), kind=int)
    _option(parser, "--max-messages-per-sender", "CONNECTORS_MAX_MESSAGES_PER_SENDER",
            "smtp, mail servers on --port: messages per minute from one envelope sender; "
            "more are refused with 450 so that the server retries later (0: no limit)",
            "60", kind=int)
    _option(parser, "--max-messages-per-client", "CONNECTORS_MAX_MESSAGES_PER_CLIENT",
            "smtp, mail servers on --port: messages per minute from one client address "
            "(behind a Service without externalTrafficPolicy Local, every client has a "
            "node's address) (0: no limit)", "120", kind=int)
    _option(parser, "--idle-timeout", "CONNECTORS_IDLE_TIMEOUT",
            "seconds without activity before a session is closed", "600", kind=float)
    _option(parser, "--max-sessions-per-account", "CONNECTORS_MAX_SESSIONS_PER_ACCOUNT",
            "concurrent sessions per account (0: no limit)", "10", kind=int)
    _option(parser, "--ban-address-failures", "CONNECTORS_BAN_ADDRESS_FAILURES",
            "failed logins from one address that trigger a ban (0: never)", "10", kind=int)
    _option(parser, "--ban-user-failures", "CONNECTORS_BAN_USER_FAILURES",
            "failed logins for one username that trigger a ban (0: never)", "10", kind=int)
    _option(parser, "--ban-window", "CONNECTORS_BAN_WINDOW",
            "seconds over which failures are counted", "300", kind=float)
    _option(parser, "--ban-seconds", "CONNECTORS_BAN_SECONDS",
            "how long a ban lasts", "900", kind=float)
    _option(parser, "--accounts-poll-seconds", "CONNECTORS_ACCOUNTS_POLL_SECONDS",
            "how often the account table is re-read", "2", kind=float)
    _option(parser, "--log-level", "CONNECTORS_LOG_LEVEL", "log level", "INFO")


@dataclass
class Common:
    """What every listener needs, built from the arguments."""

    accounts: AccountsFile
    defender: Defender
    reporter: TransferReporter
    data_root: Path
    address: str
    port: int
    state: StateReporter | None = None


def build_common(args: argparse.Namespace) -> Common:
    state = (state_reporter_from_environment(args.protocol, kubernetes_api_client())
             if os.environ.get("CONNECTORS_STATE_CONFIGMAP") else None)
    accounts = AccountsFile(Path(args.accounts_file), poll_seconds=args.accounts_poll_seconds,
                            on_load=state.loaded if state else None)
    defender = Defender(DefenderSettings(
        max_failures_per_address=args.ban_address_failures,
        max_failures_per_user=args.ban_user_failures,
        window_seconds=args.ban_window,
        ban_seconds=args.ban_seconds,
    ))
    port = args.port if args.port is not None else DEFAULT_PORTS[args.protocol]
    return Common(accounts, defender, reporter_from_environment(), Path(args.data_root),
                  args.address, port, state)


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
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        ),
    )
    listener = sftp_server.SftpListener(context, common.address, common.port)
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
    )
    server = ftp_server.build_server(common.accounts, common.data_root, common.defender,
                                     common.reporter, settings, common.address, common.port)
    stop = threading.Event()
    on_termination(stop.set)
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
    )
    if args.submission_port == common.port:
        log.error("--submission-port must differ from --port (%d)", common.port)
        return 2
    stop = threading.Event()
    on_termination(stop.set)
    smtp_server.serve_until(common.accounts, common.data_root, common.defender,
                            common.reporter, settings, common.address, common.port,
                            args.submission_port, stop)
    return 0
