"""`connectors process`: the namespace's processor, as the operator's Deployment runs it.

One pass, every --poll-seconds: reload the processing table if it changed,
record the receipts that appeared, then claim and check waiting submissions
until none is left. Several processors may share a volume: claims make each
file checked by one at a time (submissions/store.py). Old submissions are
purged once an hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import signal
import smtplib
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from .. import logs
from ..api.processing import Processed, ProcessingTable
from ..api.shards import read_shards
from ..events import kubernetes_api_client
from ..metrics import processor as processor_metrics
from ..metrics.server import PROCESSOR_METRICS_PORT, add_metrics_options, serve_metrics
from ..options import env_option
from ..planning.credentials import PGP_PRIVATE_KEY
from ..sinks import SECRETS_ROOT, SecretFiles, sink_id
from ..submissions import CheckSettings, Claim, SubmissionStore, schema_for, store_path
from ..submissions.store import RETENTION_DAYS
from . import observe
from .deliveries import Deliverer
from .discover import Discovery
from .replies import Relay, answer
from .report import KubernetesReporter, LoggingReporter, SubmissionReporter
from .work import Checked, Heartbeat, process

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    option = functools.partial(env_option, parser)
    option("--data-root", env="CONNECTORS_DATA_ROOT", default="/data",
           help="the data volume; a Connection's files are in <data-root>/<connection>")
    option("--table", env="CONNECTORS_PROCESSING_FILE",
           default="/etc/connectors/processing",
           help="the processing table: a folder of shard files processing-NN.json (the "
                "mounted ConfigMaps), or one table file")
    option("--poll-seconds", env="CONNECTORS_POLL_SECONDS", type=float, default=1.0,
           help="how often to look for landed files")
    option("--retention-days", env="CONNECTORS_RETENTION_DAYS", type=float, default=90.0,
           help="how long the history keeps a checked submission")
    option("--lease-seconds", env="CONNECTORS_LEASE_SECONDS", type=float, default=60.0,
           help="how long a claim holds unrenewed: a crashed processor's file is taken up "
                "again after this (a running check renews it)")
    option("--smtp-relay", env="CONNECTORS_SMTP_RELAY",
           help="Email replies with results: the platform's relay, HOST:PORT")
    option("--smtp-from", env="CONNECTORS_SMTP_FROM",
           help="Email replies with results: the sender address")
    option("--sinks-secrets", env="CONNECTORS_SINKS_SECRETS", default=str(SECRETS_ROOT),
           help="where the Secrets the processor reads are mounted, one folder each: "
                "those of spec.submissions.deliverTo and spec.pgp.decryptWith's key pair")
    option("--log-level", env="CONNECTORS_LOG_LEVEL", default="info",
           choices=["debug", "info", "warning", "error"], help="log level")
    logs.add_log_format_option(parser)
    add_metrics_options(parser, PROCESSOR_METRICS_PORT)


class TableFile:
    """The processing table from its mounted shard files (or one table file),
    reloaded when it changes; a table that does not parse leaves the last good
    one in force."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: list[bytes] | None = None
        self.connections: dict[str, Processed] = {}

    def reload(self) -> None:
        try:
            raw = read_shards(self.path, "processing-*.json")
        except OSError as err:
            if self._raw is not None:
                log.warning("processing table %s unreadable: %s", self.path, err.strerror)
            self._raw = None
            return
        if raw == self._raw:
            return
        self._raw = raw
        try:
            tables = [ProcessingTable.parse(shard) for shard in raw]
        except ValidationError as err:
            log.error("processing table %s invalid (%d errors); keeping the last good one",
                      self.path, err.error_count())
            return
        self.connections = {c.connection: c for table in tables for c in table.connections
                            if c.home and "/" not in c.home and not c.home.startswith(".")}
        log.info("processing the files of %d Connections", len(self.connections))


class Processor:
    def __init__(self, root: Path, table: TableFile, store: SubmissionStore,
                 reporter: SubmissionReporter, lease_seconds: float = 60.0,
                 settings: CheckSettings | None = None,
                 heartbeat: Heartbeat | None = None, relay: Relay | None = None,
                 retention_days: float = RETENTION_DAYS,
                 secrets: SecretFiles | None = None) -> None:
        self.root = root
        self.table = table
        self.store = store
        self.reporter = reporter
        self.lease_seconds = lease_seconds
        self.settings = settings or CheckSettings()
        self.discovery = Discovery(root, store, retention_days)
        self.heartbeat = heartbeat
        self.relay = relay
        self.secrets = secrets or SecretFiles()
        self.worker = f"{socket.gethostname()}-{os.getpid()}"

    def run_once(self, stop: threading.Event | None = None) -> int:
        """One pass; returns how many files were checked."""
        self.table.reload()
        served = self.table.connections
        self.discovery.scan({name: c.home for name, c in served.items()})
        checked = 0
        for name, entry in served.items():
            checked += self._check_all(name, entry, stop)
        return checked

    def _check_all(self, name: str, entry: Processed, stop: threading.Event | None) -> int:
        """Checks the waiting files of one Connection; a file given back (not
        ready yet) ends the loop, for the next pass to try again. Per Connection:
        a file of a Connection this table does not serve stays for one that does."""
        schema = schema_for(entry.data_type, entry.schema_)
        sinks = [sink_id(s) for s in entry.deliver_to or ()]
        checked = 0
        while stop is None or not stop.is_set():
            claims = self.store.claim(self.worker, lease_seconds=self.lease_seconds,
                                      connection=name)
            if not claims:
                break
            claim = claims[0]  # one at a time (claim's limit is 1)
            path = self.discovery.paths.get(claim.submission.trace_id)
            self._holding(claim)
            started = time.monotonic()
            try:
                item = process(claim, path, schema, self.root, self.store, self.settings,
                               deliver_to=sinks, private_key=self._key(entry))
            finally:
                self._holding(None)
            if item is None:
                break  # given back: claiming again now would take the same file
            checked += 1
            observe.checked(item, claim.submission, time.monotonic() - started)
            self._report(self._answer(item, entry, claim.submission.trace_id))
        return checked

    def _answer(self, item: Checked, entry: Processed, trace_id: str) -> Checked:
        """Email: the reply with the results, when the Connection wants one."""
        try:
            to = answer(item, self.root / entry.home, trace_id, entry.reply_to, self.relay,
                        entry.display_name or entry.connection)
        except (OSError, smtplib.SMTPException) as err:
            log.warning("could not send the results of %s: %s", item.name,
                        type(err).__name__)
            return item
        return dataclasses.replace(item, answered=to) if to else item

    def _key(self, entry: Processed) -> Callable[[], str] | None:
        """spec.pgp.decryptWith: the private key, read when a file needs it."""
        secret = entry.decrypt_with
        if secret is None:
            return None
        return lambda: self.secrets.text(secret, PGP_PRIVATE_KEY)

    def _holding(self, claim: Claim | None) -> None:
        if self.heartbeat is not None:
            self.heartbeat.holding(claim)

    def _report(self, item: Checked) -> None:
        try:
            self.reporter.checked(item, self.store)
        except Exception as err:  # the API may be down: the history has it
            log.warning("could not report the check of %s: %s", item.name, type(err).__name__)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format, sys.stderr)
    root = Path(args.data_root)
    path = store_path(root)
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()
    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)

    namespace = os.environ.get("CONNECTORS_NAMESPACE")
    processor_metrics.configure(namespace)
    logs.set_audit_defaults(namespace=namespace)
    try:
        metrics_server = serve_metrics(args)
    except OSError as err:
        log.error("cannot serve metrics on %s:%d: %s", args.metrics_address, args.metrics_port,
                  err.strerror or type(err).__name__)
        return 2
    reporter = _reporter(namespace)
    heartbeat = Heartbeat(path, args.lease_seconds)
    with SubmissionStore(path) as store:
        processor = Processor(root, TableFile(Path(args.table)), store, reporter,
                              lease_seconds=args.lease_seconds, heartbeat=heartbeat,
                              relay=Relay.parse(args.smtp_relay, args.smtp_from),
                              retention_days=args.retention_days,
                              secrets=SecretFiles(Path(args.sinks_secrets)))
        # Its own reporter: each thread talks to the API through its own client.
        deliverer = Deliverer(
            path, root, namespace or "", processor.worker,
            lambda: processor.table.connections, processor.discovery.paths,
            _reporter(namespace), SecretFiles(Path(args.sinks_secrets)),
            poll_seconds=args.poll_seconds)
        deliverer.start()
        last_purge = 0.0
        log.info("processor %s started on %s", processor.worker, root)
        while not stop.is_set():
            try:
                processor.run_once(stop)
                if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                    purged = store.purge(args.retention_days)
                    last_purge = time.monotonic()
                    if purged:
                        log.info("purged %d submissions older than %g days", purged,
                                 args.retention_days)
            except Exception:
                # One bad pass (a full disk, a locked store) must not end the
                # processor: the next pass tries again.
                log.exception("processing pass failed")
            stop.wait(args.poll_seconds)
        deliverer.close()
    heartbeat.close()
    if metrics_server is not None:
        metrics_server.close()
    return 0


def _reporter(namespace: str | None) -> SubmissionReporter:
    api_client = kubernetes_api_client() if namespace else None
    if namespace and api_client is not None:
        return KubernetesReporter(namespace, api_client)
    return LoggingReporter()
