"""`connectors run`: the operator, on kopf's runner with production settings."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..options import env_option, env_value
from ..planning.config import OperatorConfig
from .handlers import register
from .kube import Kube, load_api_client
from .operator import Operator
from .peering import Peering
from .peering import decide as decide_peering

log = logging.getLogger("connectors")


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
    option("--peering", env="CONNECTORS_PEERING", default="connectors",
           help="kopf peering object that keeps one replica active")
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
           help="NodePort Services: fixed node ports, e.g. sftp=30022,ftp=30021")
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
    option("--listener-tls-secret", env="CONNECTORS_LISTENER_TLS_SECRET",
           help="FTPS and SMTP: a kubernetes.io/tls Secret of that name in each "
                "namespace (default: a self-signed one the operator makes once)")
    option("--smtp-relay", env="CONNECTORS_SMTP_RELAY",
           help="Outbound Email: the relay, HOST:PORT")
    option("--smtp-from", env="CONNECTORS_SMTP_FROM",
           help="Outbound Email: the sender address")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    pull_secrets = tuple(n.strip() for n in args.image_pull_secrets.split(",") if n.strip())
    node_ports = parse_node_ports(args.listener_node_ports)
    low, _, high = args.ftp_passive_ports.partition("-")
    return OperatorConfig(image=args.image, image_pull_policy=args.image_pull_policy,
                          image_pull_secrets=pull_secrets, email_domain=args.email_domain,
                          data_claim=args.data_claim, smtp_relay=args.smtp_relay,
                          smtp_from=args.smtp_from,
                          listener_tls_secret=args.listener_tls_secret or None,
                          listener_service_type=args.listener_service_type,
                          listener_node_ports=node_ports,
                          listener_external_host=args.listener_external_host or None,
                          ftp_passive_ports=(int(low), int(high or low)),
                          ftp_masquerade_address=args.ftp_masquerade_address or None,
                          data_storage_class=args.data_storage_class or None,
                          data_size=args.data_size)


def parse_node_ports(text: str) -> dict[str, int]:
    """'sftp=30022,ftp=30021' -> {'sftp': 30022, 'ftp': 30021}."""
    ports: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        protocol, _, port = item.partition("=")
        if protocol not in ("sftp", "ftp", "smtp") or not port.isdigit():
            raise SystemExit(f"--listener-node-ports: {item!r} is not PROTOCOL=PORT "
                             "with PROTOCOL sftp, ftp or smtp")
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
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf reports every handler call at INFO; the reconcilers log what matters.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        # kopf's own login reads the same file.
        os.environ["KUBECONFIG"] = args.kubeconfig
    registry, operator = build(args)
    watched = namespaces(args)
    peering = (Peering(standalone=True) if args.standalone
               else decide_peering(operator.kube, args.peering, watched))
    # Peering settings go to kopf before it starts (not in a startup handler, which runs
    # after its orchestration has begun); kopf's own `peering_name=` argument would make
    # peering mandatory whatever was decided.
    settings = kopf.OperatorSettings()
    settings.peering.name = args.peering
    settings.peering.standalone = peering.standalone
    settings.peering.mandatory = peering.mandatory
    operator.kube.wait_until_served(("Connection", "Credential"))
    log.info("watching %s for %s/%s, %s", ", ".join(watched) if watched else "all namespaces",
             GROUP, VERSION,
             "standalone" if peering.standalone else f"peering as {args.peering}")
    asyncio.run(kopf.operator(
        registry=registry,
        settings=settings,
        clusterwide=not watched,
        namespaces=watched,
        liveness_endpoint=args.liveness,
    ))
    return 0
