"""What `connectors run` checks and says before kopf starts.

A missing prerequisite is one line that names it and the fix, and exit status 1,
never a traceback nor an operator that sits idle: the CRDs not installed, or,
when peering was asked for (`--peering`, as the chart does), kopf's peering CRD
or object. Then one block of log lines says what this operator will do: its
mode and why, the namespaces it watches, the image of its workloads and the
settings in effect, never a secret value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..api.common import GROUP, VERSION
from ..planning.config import OperatorConfig
from ..ports import LISTENER_PROTOCOLS
from .kube import Kube

if TYPE_CHECKING:  # peering raises MissingPrerequisite: no import cycle at run time
    from .peering import Peering

CRD_FILES = "crds/"
HELM_INSTALL = "helm install connectors charts/connectors"
# How long the CRDs may take to appear in discovery before they count as missing:
# right after `kubectl apply -f crds/` they are listed within a second or two.
CRD_GRACE_SECONDS = 10.0
KINDS = (("Connection", "connections"), ("Credential", "credentials"))


class MissingPrerequisite(Exception):
    """Something the cluster lacks for the operator to run, said in one line with the fix."""


def missing_crds(kube: Kube) -> list[str]:
    """The plurals of our kinds that the API server's discovery does not list."""
    return [plural for _, plural in KINDS if not kube.serves(f"{GROUP}/{VERSION}", plural)]


def check_crds(kube: Kube, grace: float = CRD_GRACE_SECONDS,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Returns once discovery lists both kinds; MissingPrerequisite when it does not
    within `grace` seconds. (Listed but not yet served, right after an install, is
    waited for by Kube.wait_until_served.)"""
    deadline = time.monotonic() + grace
    while True:
        missing = missing_crds(kube)
        if not missing:
            return
        if time.monotonic() >= deadline:
            break
        sleep(0.5)
    names = " and ".join(f"{plural}.{GROUP}" for plural in missing)
    raise MissingPrerequisite(
        f"the CRD{'s' if len(missing) > 1 else ''} {names} ({VERSION}) "
        f"{'are' if len(missing) > 1 else 'is'} not installed on this cluster: install them "
        f"with kubectl apply --server-side -f {CRD_FILES} (or {HELM_INSTALL}, which installs "
        "them), then start the operator again")


def _words(values: dict[str, str] | tuple[str, ...]) -> str:
    if isinstance(values, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "none"
    return ", ".join(values) or "none"


def summary_lines(config: OperatorConfig, peering: Peering, peering_name: str,
                  namespaces: list[str]) -> list[str]:
    """The start-up summary, one setting a line. Names and numbers only: the relay's
    address is not secret, but the summary says only whether there is one."""
    if peering.standalone:
        mode = f"standalone ({peering.reason})"
    else:
        mode = (f"peering as {peering_name} ({peering.reason}): one replica of the operator "
                "is active at a time")
    types = {p: config.service_type(p) for p in LISTENER_PROTOCOLS}
    one = set(types.values())
    service_types = one.pop() if len(one) == 1 else _words(types)
    return [
        f"mode: {mode}",
        "namespaces: " + (", ".join(namespaces) if namespaces else "all"),
        f"image for listeners and transfer jobs: {config.image} (pull policy "
        f"{config.image_pull_policy}, pull secrets: {_words(config.image_pull_secrets)})",
        f"listener services: {service_types}; external host: "
        f"{config.listener_external_host or 'none (status.endpoint shows the Service name)'}; "
        f"node ports: {_words({k: str(v) for k, v in config.listener_node_ports.items()})}; "
        f"replicas: {config.listener_replicas}",
        "listener TLS certificate: " + (f"Secret {config.listener_tls_secret}"
                                        if config.listener_tls_secret
                                        else "self-signed, one per namespace"),
        f"data volume: claim {config.data_claim}, storage class "
        f"{config.data_storage_class or 'the cluster default'}, {config.data_size}, "
        f"{config.data_access_mode}",
        f"email: domain {config.email_domain}; outbound relay configured: "
        f"{'yes' if config.smtp_relay else 'no (Outbound Email stays RelayNotConfigured)'}",
        f"submission history kept {config.submission_retention_days:g} days",
    ]
