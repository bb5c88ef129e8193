"""Whether kopf's peering can work on this cluster, decided once, before kopf starts.

Peering keeps one replica of the operator active. kopf makes it mandatory as soon
as it is given a peering name, and then:

- without the peering CRD (`clusterkopfpeerings.kopf.dev` for an operator of all
  namespaces, `kopfpeerings.kopf.dev` for one of some namespaces) it pauses every
  watch until the CRD appears, and says so only at debug level;
- with the CRD but without the named peering object it stays paused, waiting for
  that object's first event, which never comes.

Either way the operator sits idle after "Initial authentication has finished".
So it looks first: without the CRD it runs standalone and says so in one WARNING
that names the CRD and the fix; with the CRD it makes the peering objects it
needs when they are missing (the Helm chart makes them; a plain install may not).
When peering was asked for by name (`--peering`, as the chart does), a missing
CRD, or an object it may not create, is a MissingPrerequisite instead: the
operator says so in one line and exits, rather than run unpeered beside another
replica.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from .kube import Kube
from .startup import MissingPrerequisite

log = logging.getLogger(__name__)

GROUP = "kopf.dev"
VERSION = "v1"
CRD_FILE = "charts/connectors/crds/kopf-peering.yaml"
# How long an operator asked to peer waits for a peering object it may not create:
# Helm creates the chart's after the Deployment, so the first pod of an install
# usually starts before it exists (CI saw that pod exit once and restart).
PEERING_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Peering:
    """What kopf is told: standalone, or peering under `name`, mandatory or not."""

    standalone: bool
    mandatory: bool = False
    reason: str = ""
    """Why, in words, for the start-up summary."""


def _is_pattern(namespace: str) -> bool:
    return bool(set(namespace) & set("*?["))


def _ensure_or_wait(kube: Kube, kind: str, plural: str, name: str, namespace: str | None,
                    wait_seconds: float) -> bool:
    """kube.ensure_peering; while it may not create the object, asks again every
    second for up to `wait_seconds` in case someone else makes it."""
    deadline = time.monotonic() + wait_seconds
    said = False
    while True:
        try:
            return kube.ensure_peering(kind, plural, name, namespace)
        except ApiException as error:
            if error.status not in (401, 403) or time.monotonic() >= deadline:
                raise
            if not said:
                log.info("waiting up to %.0f s for %s %s, which the operator may not create "
                         "(the Helm chart makes it right after the operator's Deployment)",
                         wait_seconds, kind, name)
                said = True
            time.sleep(1.0)


def decide(kube: Kube, name: str, namespaces: list[str], required: bool = False,
           wait_seconds: float = PEERING_WAIT_SECONDS) -> Peering:
    """Checks the peering CRD and objects for an operator watching `namespaces` (all
    of them when empty), makes missing objects, and says how kopf should peer.
    `required`: peering was asked for by name, so what it needs and lacks is a
    MissingPrerequisite, not a reason to run standalone; an object it may not
    create is waited for `wait_seconds` first."""
    clusterwide = not namespaces
    kind, plural = (("ClusterKopfPeering", "clusterkopfpeerings") if clusterwide
                    else ("KopfPeering", "kopfpeerings"))
    if not kube.serves(f"{GROUP}/{VERSION}", plural):
        if required:
            raise MissingPrerequisite(
                f"peering {name} was asked for (--peering), but the peering CRD "
                f"{plural}.{GROUP} is not installed: install it with kubectl apply "
                f"--server-side -f {CRD_FILE} (helm install connectors charts/connectors "
                "installs it), or run with --standalone")
        log.warning(
            "the peering CRD %s.%s is not installed, so nothing keeps a second replica of "
            "the operator from acting too: running standalone. To keep one replica active, "
            "install kopf's peering CRDs (kubectl apply -f %s) and restart; to silence this "
            "with one replica, run with --standalone", plural, GROUP, CRD_FILE)
        return Peering(standalone=True, reason=f"the peering CRD {plural}.{GROUP} is not "
                                                f"installed")
    if clusterwide:
        targets: list[str | None] = [None]
    else:
        targets = [ns for ns in namespaces if not _is_pattern(ns)]
        patterns = [ns for ns in namespaces if _is_pattern(ns)]
        if patterns:
            targets += [ns for ns in kube.namespace_names()
                        if any(fnmatch.fnmatchcase(ns, p) for p in patterns)
                        and ns not in targets]
    for namespace in targets:
        where = f" in namespace {namespace}" if namespace else ""
        try:
            created = (_ensure_or_wait(kube, kind, plural, name, namespace, wait_seconds)
                       if required else kube.ensure_peering(kind, plural, name, namespace))
        except ApiException as error:
            if error.status not in (401, 403):
                raise
            in_namespace = f", namespace: {namespace}" if namespace else ""
            create = (f"kubectl apply -f - <<< '{{apiVersion: {GROUP}/{VERSION}, kind: {kind}, "
                      f"metadata: {{name: {name}{in_namespace}}}}}'")
            if required:
                raise MissingPrerequisite(
                    f"peering {name} was asked for (--peering), but {kind} {name} does not "
                    f"exist{where} and the operator may not create it (HTTP {error.status}): "
                    f"create it with {create}, or run with --standalone") from error
            log.warning(
                "%s %s does not exist%s and the operator may not create it (HTTP %s): "
                "running standalone. Create it with: kubectl apply -f - <<< "
                "'{apiVersion: %s/%s, kind: %s, metadata: {name: %s%s}}'",
                kind, name, where, error.status, GROUP, VERSION, kind, name,
                f", namespace: {namespace}" if namespace else "")
            return Peering(standalone=True, reason=f"{kind} {name} does not exist{where} "
                                                    "and may not be created")
        if created:
            log.info("created %s %s%s: replicas of the operator meet there", kind, name, where)
    # A namespace that matches a pattern later has no peering object yet: with
    # mandatory peering kopf would pause the whole operator for it. Peer where the
    # object exists instead (kopf's auto-detection).
    patterned = any(_is_pattern(ns) for ns in namespaces)
    reason = (f"{kind} {name}" + (" in each watched namespace" if namespaces else "")
              + (", where it exists (namespace patterns)" if patterned else ""))
    return Peering(standalone=False, mandatory=not patterned, reason=reason)
