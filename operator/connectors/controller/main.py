"""`connectors run`: the operator, on kopf's runner with production settings."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from .. import __version__, logs
from ..api.common import GROUP, VERSION
from ..metrics.operator import ConnectionsCollector, register_connections
from ..metrics.server import OPERATOR_METRICS_PORT, add_metrics_options
from ..options import env_option, env_value
from ..planning.config import OperatorConfig
from .endpoints import Endpoints, shared_liveness_path
from .kube import Kube, load_api_client
from .operator import Operator
from .peering import Peering
from .peering import decide as decide_peering
from .startup import MissingPrerequisite, check_crds, summary_lines
from .watches import register, server_side_selectors

log = logging.getLogger("connectors")
DEFAULT_PEERING = "connectors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable) [env CONNECTORS_NAMESPACES, "
                            "comma-separated]")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch every namespace (needs the chart's cluster-wide RBAC)")
    option = functools.partial(env_option, parser)
    option("--kubeconfig", env="KUBECONFIG",
           help="kubeconfig file; default: in-cluster service account, else ~/.kube/config")
    parser.add_argument("--standalone", action="store_true",
                        help="no peering: run even if another replica is active (tests, demo)")
    option("--peering", env="CONNECTORS_PEERING",
           help="kopf peering object that keeps one replica active (default: connectors, "
                "and standalone with a warning when the cluster lacks kopf's peering CRD; "
                "named here, peering is required: without it the operator exits)")
    option("--liveness", env="CONNECTORS_LIVENESS",
           help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    option("--workers", env="CONNECTORS_WORKERS", type=int, default=8,
           help="concurrent reconciles per kind")
    option("--resync-seconds", env="CONNECTORS_RESYNC_SECONDS", type=float, default=300.0,
           help="reconcile everything again this often")
    option("--image", env="CONNECTORS_IMAGE", default=OperatorConfig.image,
           help="image of the listeners and transfer jobs")
    option("--image-pull-policy", env="CONNECTORS_IMAGE_PULL_POLICY",
           default=OperatorConfig.image_pull_policy,
           choices=["Always", "IfNotPresent", "Never"],
           help="pull policy of the listeners and transfer jobs")
    option("--image-pull-secrets", env="CONNECTORS_IMAGE_PULL_SECRETS", default="",
           help="comma-separated Secrets (in each namespace) for pulling the image")
    option("--email-domain", env="CONNECTORS_EMAIL_DOMAIN", default=OperatorConfig.email_domain,
           help="Inbound Email: connections receive at <connection>@DOMAIN")
    option("--data-claim", env="CONNECTORS_DATA_CLAIM", default=OperatorConfig.data_claim,
           help="PersistentVolumeClaim of each namespace's data volume")
    option("--listener-service-type", env="CONNECTORS_LISTENER_SERVICE_TYPE",
           choices=["ClusterIP", "NodePort", "LoadBalancer"],
           default=OperatorConfig.listener_service_type,
           help="type of the listeners' Services")
    option("--listener-node-ports", env="CONNECTORS_LISTENER_NODE_PORTS", default="",
           help="NodePort Services: fixed node ports, e.g. sftp=30022,ftp=30021,"
                "smtp=30025,submission=30587")
    option("--listener-service-types", env="CONNECTORS_LISTENER_SERVICE_TYPES", default="",
           help="a Service type per protocol other than --listener-service-type, e.g. "
                "sftp=LoadBalancer,smtp=NodePort")
    option("--listener-service-annotations", env="CONNECTORS_LISTENER_SERVICE_ANNOTATIONS",
           default="", help="annotations on every listener Service, as a JSON object")
    option("--listener-source-ranges", env="CONNECTORS_LISTENER_SOURCE_RANGES", default="",
           help="LoadBalancer Services: comma-separated CIDRs allowed to connect")
    option("--listener-external-traffic-policy",
           env="CONNECTORS_LISTENER_EXTERNAL_TRAFFIC_POLICY", choices=["", "Cluster", "Local"],
           default="", help="NodePort and LoadBalancer Services: Local keeps the partner's "
                            "address for bans and allowed senders")
    option("--listener-replicas", env="CONNECTORS_LISTENER_REPLICAS", type=int, default=1,
           help="listener pods per protocol (they share the data volume)")
    option("--listener-max-connections", env="CONNECTORS_LISTENER_MAX_CONNECTIONS", type=int,
           default=OperatorConfig.listener_max_connections,
           help="connections one listener pod holds at once; more are refused before login "
                "with an answer to try again later (0: no limit)")
    option("--listener-max-unauthenticated", env="CONNECTORS_LISTENER_MAX_UNAUTHENTICATED",
           type=int, default=OperatorConfig.listener_max_unauthenticated,
           help="of those, connections not logged in yet (at most --listener-max-connections; "
                "0: no limit)")
    option("--listener-login-grace-seconds", env="CONNECTORS_LISTENER_LOGIN_GRACE_SECONDS",
           type=float, default=OperatorConfig.listener_login_grace_seconds,
           help="a listener closes a connection not logged in this long after it opened "
                "(0: never)")
    option("--listener-memory-request", env="CONNECTORS_LISTENER_MEMORY_REQUEST",
           default=OperatorConfig.listener_memory_request,
           help="memory request of each listener pod")
    option("--listener-memory-limit", env="CONNECTORS_LISTENER_MEMORY_LIMIT",
           default=OperatorConfig.listener_memory_limit,
           help="memory limit of each listener pod")
    option("--smtp-submission", env="CONNECTORS_SMTP_SUBMISSION", choices=["true", "false"],
           default="true", help="Inbound Email: also serve the submission port (587, login "
                                "with the Credential after STARTTLS) besides port 25")
    option("--smtp-max-message-bytes", env="CONNECTORS_SMTP_MAX_MESSAGE_BYTES", type=int,
           default=OperatorConfig.smtp_max_message_bytes,
           help="Inbound Email: the largest message the SMTP listener takes")
    option("--smtp-max-messages-per-sender", env="CONNECTORS_SMTP_MAX_MESSAGES_PER_SENDER",
           type=int, default=OperatorConfig.smtp_max_messages_per_sender,
           help="Inbound Email, port 25: messages a minute per envelope sender (0: no limit)")
    option("--smtp-max-messages-per-client", env="CONNECTORS_SMTP_MAX_MESSAGES_PER_CLIENT",
           type=int, default=OperatorConfig.smtp_max_messages_per_client,
           help="Inbound Email, port 25: messages a minute per client address (0: no limit)")
    option("--listener-external-host", env="CONNECTORS_LISTENER_EXTERNAL_HOST",
           help="where partners reach the listeners, shown in status.endpoint")
    option("--ftp-passive-ports", env="CONNECTORS_FTP_PASSIVE_PORTS", default="30100-30104",
           help="FTP passive port range FIRST-LAST")
    option("--ftp-masquerade-address", env="CONNECTORS_FTP_MASQUERADE_ADDRESS",
           help="FTP: the address announced in PASV replies (partners' view)")
    option("--data-storage-class", env="CONNECTORS_DATA_STORAGE_CLASS",
           help="storage class of each namespace's data volume claim")
    option("--data-size", env="CONNECTORS_DATA_SIZE", default=OperatorConfig.data_size,
           help="size of each namespace's data volume claim")
    option("--data-access-mode", env="CONNECTORS_DATA_ACCESS_MODE",
           choices=["ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"],
           default=OperatorConfig.data_access_mode,
           help="access mode of each namespace's data volume claim (ReadWriteMany lets "
                "listener replicas and transfer jobs run on several nodes)")
    option("--listener-tls-secret", env="CONNECTORS_LISTENER_TLS_SECRET",
           help="FTPS and SMTP: a kubernetes.io/tls Secret of that name in each "
                "namespace (default: a self-signed one the operator makes once)")
    option("--smtp-relay", env="CONNECTORS_SMTP_RELAY",
           help="Outbound Email: the relay, HOST:PORT")
    option("--smtp-from", env="CONNECTORS_SMTP_FROM",
           help="Outbound Email: the sender address")
    option("--submission-retention-days", env="CONNECTORS_SUBMISSION_RETENTION_DAYS",
           type=float, default=OperatorConfig.submission_retention_days,
           help="how long the submission history keeps a checked file")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    logs.add_log_format_option(parser)
    add_metrics_options(parser, OPERATOR_METRICS_PORT)
    option("--workload-metrics", env="CONNECTORS_WORKLOAD_METRICS", choices=["true", "false"],
           default="true", help="listeners and processors serve metrics (ports "
                                "9090 and 9091, named `metrics`)")


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    pull_secrets = tuple(n.strip() for n in args.image_pull_secrets.split(",") if n.strip())
    node_ports = parse_node_ports(args.listener_node_ports)
    low, _, high = args.ftp_passive_ports.partition("-")
    return OperatorConfig(image=args.image, image_pull_policy=args.image_pull_policy,
                          image_pull_secrets=pull_secrets, email_domain=args.email_domain,
                          data_claim=args.data_claim, smtp_relay=args.smtp_relay,
                          smtp_from=args.smtp_from,
                          listener_tls_secret=args.listener_tls_secret or None,
                          smtp_submission=args.smtp_submission == "true",
                          smtp_max_message_bytes=args.smtp_max_message_bytes,
                          smtp_max_messages_per_sender=args.smtp_max_messages_per_sender,
                          smtp_max_messages_per_client=args.smtp_max_messages_per_client,
                          listener_service_type=args.listener_service_type,
                          listener_node_ports=node_ports,
                          listener_external_host=args.listener_external_host or None,
                          ftp_passive_ports=(int(low), int(high or low)),
                          ftp_masquerade_address=args.ftp_masquerade_address or None,
                          data_storage_class=args.data_storage_class or None,
                          data_size=args.data_size, data_access_mode=args.data_access_mode,
                          listener_service_types=parse_pairs(
                              args.listener_service_types, "--listener-service-types",
                              ("sftp", "ftp", "smtp"), ("ClusterIP", "NodePort", "LoadBalancer")),
                          listener_service_annotations=parse_annotations(
                              args.listener_service_annotations),
                          listener_source_ranges=tuple(
                              r.strip() for r in args.listener_source_ranges.split(",")
                              if r.strip()),
                          listener_external_traffic_policy=(
                              args.listener_external_traffic_policy or None),
                          listener_replicas=args.listener_replicas,
                          **listener_limits(args),
                          listener_memory_request=args.listener_memory_request,
                          listener_memory_limit=args.listener_memory_limit,
                          submission_retention_days=args.submission_retention_days,
                          workload_metrics=args.workload_metrics == "true",
                          log_format=args.log_format)


def listener_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The listeners' connection cap, checked as the listeners check it."""
    total, before_login = args.listener_max_connections, args.listener_max_unauthenticated
    if total < 0 or before_login < 0 or args.listener_login_grace_seconds < 0:
        raise SystemExit("--listener-max-connections, --listener-max-unauthenticated and "
                         "--listener-login-grace-seconds must be 0 (no limit) or more")
    if total and before_login > total:
        raise SystemExit(f"--listener-max-unauthenticated {before_login} is more than "
                         f"--listener-max-connections {total}")
    return {"listener_max_connections": total, "listener_max_unauthenticated": before_login,
            "listener_login_grace_seconds": args.listener_login_grace_seconds}


def parse_pairs(text: str, flag: str, names: tuple[str, ...],
                values: tuple[str, ...]) -> dict[str, str]:
    """'sftp=LoadBalancer,smtp=NodePort' -> {'sftp': 'LoadBalancer', 'smtp': 'NodePort'}."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in names or value not in values:
            raise SystemExit(f"{flag}: {item!r} is not NAME=VALUE with NAME one of "
                             f"{', '.join(names)} and VALUE one of {', '.join(values)}")
        pairs[name] = value
    return pairs


def parse_annotations(text: str) -> dict[str, str]:
    """A JSON object of string to string, as the chart renders a values map."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SystemExit("--listener-service-annotations: give a JSON object of strings, "
                         'e.g. {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}')
    return value


NODE_PORT_NAMES = ("sftp", "ftp", "smtp", "submission")


def parse_node_ports(text: str) -> dict[str, int]:
    """'sftp=30022,ftp=30021' -> {'sftp': 30022, 'ftp': 30021}."""
    ports: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        protocol, _, port = item.partition("=")
        if protocol not in NODE_PORT_NAMES or not port.isdigit():
            raise SystemExit(f"--listener-node-ports: {item!r} is not NAME=PORT "
                             "with NAME sftp, ftp, smtp or submission (SMTP's port 587)")
        ports[protocol] = int(port)
    return ports


def namespaces(args: argparse.Namespace) -> list[str]:
    chosen = list(args.namespace)
    if not chosen and not args.all_namespaces and (env := env_value("CONNECTORS_NAMESPACES")):
        chosen = [n.strip() for n in env.split(",") if n.strip()]
    return chosen


def build(args: argparse.Namespace) -> tuple[kopf.OperatorRegistry, Operator]:
    kube = Kube(load_api_client(args.kubeconfig))
    operator = Operator(kube, operator_config(args), workers=args.workers,
                        resync_seconds=args.resync_seconds)
    registry = kopf.OperatorRegistry()
    register(registry, operator)
    # The Connections' gauges, read from the cache at each scrape.
    register_connections(ConnectionsCollector(lambda: list(operator.connections.values()),
                                              operator.transfer_successes))

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf's watches use the very credentials the reconcilers use.
        return connection_info(kube)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Watches that end on the server's side and are re-opened, with bookmarks,
        # so a stream that silently dies on a managed cluster is noticed in seconds.
        settings.watching.server_timeout = 120
        settings.watching.client_timeout = 150
        settings.watching.connect_timeout = 5
        settings.networking.request_timeout = 30
        settings.networking.connect_timeout = 5
        # Events are ours alone: one per cause, written by the reconcilers.
        settings.posting.enabled = False
        await operator.run(operator.prime, namespaces(args))
        operator.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await operator.stop()
        log.info("stopped after %d API requests for %d Connection and %d Credential "
                 "reconciles", kube.requests, operator.connection_queue.processed,
                 operator.credential_queue.processed)
        log.info("API requests by route: %s", ", ".join(
            f"{route} {count}" for route, count in kube.routes.most_common()))

    return registry, operator


def connection_info(kube: Kube) -> kopf.ConnectionInfo:
    config = kube.api.configuration
    header = (config.get_api_key_with_prefix("BearerToken")
              or config.get_api_key_with_prefix("authorization"))
    scheme, _, token = header.partition(" ") if header else (None, "", None)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


def run(args: argparse.Namespace) -> int:
    logs.configure(logging.DEBUG if args.verbose else logging.INFO, args.log_format)
    # kopf reports every handler call at INFO; the reconcilers log what matters.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        # kopf's own login reads the same file.
        os.environ["KUBECONFIG"] = args.kubeconfig
    peering_name = args.peering or DEFAULT_PEERING
    watched = namespaces(args)
    try:
        registry, operator = build(args)
        check_crds(operator.kube)
        peering = (Peering(standalone=True, reason="--standalone") if args.standalone
                   else decide_peering(operator.kube, peering_name, watched,
                                       required=args.peering is not None))
        operator.kube.wait_until_served(("Connection", "Credential"))
    except MissingPrerequisite as error:
        log.error("cannot start: %s", error)
        return 1
    except ConfigException as error:
        log.error("cannot start: cannot read the kubeconfig: %s", error)
        return 1
    except ApiException as error:
        log.error("cannot start: the API server refused: HTTP %s %s", error.status,
                  error.reason)
        return 1
    except (HTTPError, OSError) as error:
        log.error("cannot start: cannot reach the API server: %s", error)
        return 1
    # Peering settings go to kopf before it starts (not in a startup handler, which runs
    # after its orchestration has begun); kopf's own `peering_name=` argument would make
    # peering mandatory whatever was decided.
    settings = kopf.OperatorSettings()
    settings.peering.name = peering_name
    settings.peering.standalone = peering.standalone
    settings.peering.mandatory = peering.mandatory
    # Every list and watch of Secrets, ConfigMaps, ... asks the API server for the
    # operator's own objects only (watches.py).
    server_side_selectors(settings)
    log.info("connectors operator %s starting, for %s/%s:", __version__, GROUP, VERSION)
    for line in summary_lines(operator.config, peering, peering_name, watched):
        log.info("  %s", line)
    # With metrics on the liveness endpoint's port, both are served here.
    shared = shared_liveness_path(args.liveness, args.metrics_port)
    endpoints = (Endpoints(args.metrics_address, args.metrics_port, shared)
                 if args.metrics_port else None)

    async def main() -> None:
        if endpoints is not None:
            try:
                await endpoints.start()
            except OSError as err:
                log.error("cannot serve metrics on %s:%d: %s", args.metrics_address,
                          args.metrics_port, err.strerror or type(err).__name__)
                raise SystemExit(2) from None
        try:
            await kopf.operator(
                registry=registry,
                settings=settings,
                clusterwide=not watched,
                namespaces=watched,
                liveness_endpoint=None if shared else args.liveness,
            )
        finally:
            if endpoints is not None:
                await endpoints.stop()

    asyncio.run(main())
    return 0
