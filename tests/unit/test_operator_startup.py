"""`connectors run`'s start-up: the summary block from the options in effect, and
the one-line refusal when the CRDs are missing (the real API server's side of
both is in tests/integration/test_operator_start.py)."""

from __future__ import annotations

import argparse

import pytest
from kubernetes.client.exceptions import ApiException

from connectors.controller.main import add_arguments, operator_config
from connectors.controller.peering import Peering, decide
from connectors.controller.startup import MissingPrerequisite, check_crds, summary_lines


def config_of(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_summary_says_every_setting_in_effect() -> None:
    args = config_of("--image", "registry.example/connectors:1.2", "--image-pull-secrets",
                     "regcred", "--listener-service-types", "sftp=LoadBalancer",
                     "--listener-external-host", "partners.example.com",
                     "--data-storage-class", "fast-rwx", "--listener-replicas", "3",
                     "--smtp-relay", "relay.internal.example:2525")
    lines = summary_lines(operator_config(args), Peering(standalone=False, mandatory=True,
                                                         reason="ClusterKopfPeering ops"),
                          "ops", [])
    text = "\n".join(lines)
    assert lines[0] == ("mode: peering as ops (ClusterKopfPeering ops): one replica of the "
                        "operator is active at a time")
    assert lines[1] == "namespaces: all"
    assert lines[2] == ("image for listeners and transfer jobs: registry.example/connectors:1.2 "
                        "(pull policy IfNotPresent, pull secrets: regcred)")
    assert lines[3].startswith("listener services: ftp=ClusterIP, sftp=LoadBalancer, "
                               "smtp=ClusterIP; external host: partners.example.com;")
    assert lines[3].endswith("replicas: 3")
    assert "storage class fast-rwx, 10Gi, ReadWriteMany" in text
    assert "outbound relay configured: yes" in text
    # Whether there is a relay, never where: the summary names no address it was given
    # beyond what partners see anyway.
    assert "relay.internal.example" not in text


def test_the_summary_of_a_standalone_operator_of_some_namespaces() -> None:
    lines = summary_lines(operator_config(config_of()),
                          Peering(standalone=True, reason="--standalone"), "connectors",
                          ["partners", "team-*"])
    assert lines[0] == "mode: standalone (--standalone)"
    assert lines[1] == "namespaces: partners, team-*"
    assert lines[3].startswith("listener services: ClusterIP; external host: none")
    assert any(line.startswith("data volume: claim connectors-data, storage class the "
                               "cluster default") for line in lines)
    assert any(line.endswith("outbound relay configured: no (Outbound Email stays "
                             "RelayNotConfigured)") for line in lines)


class Discovery:
    """Discovery that lists only some plurals, counting the questions."""

    def __init__(self, served: set[str]) -> None:
        self.served = served
        self.asked = 0

    def serves(self, group_version: str, plural: str) -> bool:
        self.asked += 1
        return group_version == "connectors.dev/v1alpha1" and plural in self.served


def test_missing_crds_are_one_sentence_with_the_fix() -> None:
    with pytest.raises(MissingPrerequisite) as caught:
        check_crds(Discovery(set()), grace=0)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "the CRDs connections.connectors.dev and credentials.connectors.dev (v1alpha1) are "
        "not installed on this cluster: install them with kubectl apply --server-side -f "
        "crds/ (or helm install connectors charts/connectors, which installs them), then "
        "start the operator again")
    with pytest.raises(MissingPrerequisite, match=r"^the CRD credentials\.connectors\.dev "
                                                  r"\(v1alpha1\) is not installed"):
        check_crds(Discovery({"connections"}), grace=0)  # type: ignore[arg-type]


def test_crds_that_appear_within_the_grace_are_waited_for() -> None:
    discovery = Discovery(set())
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            discovery.served = {"connections", "credentials"}

    check_crds(discovery, grace=60, sleep=nap)  # type: ignore[arg-type]
    assert naps == [0.5, 0.5]


class PeeringApi:
    """The peering CRD is served; the peering object appears after `refusals` tries,
    until then creating it is refused (403), as under the chart's RBAC."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.tries = 0

    def serves(self, group_version: str, plural: str) -> bool:
        return True

    def ensure_peering(self, kind: str, plural: str, name: str, namespace: str | None) -> bool:
        self.tries += 1
        if self.tries <= self.refusals:
            raise ApiException(status=403, reason="Forbidden")
        return False


def test_a_peering_object_made_moments_later_is_waited_for() -> None:
    """Helm makes the chart's ClusterKopfPeering after the operator's Deployment."""
    api = PeeringApi(refusals=2)
    peering = decide(api, "connectors", [], required=True)  # type: ignore[arg-type]
    assert api.tries == 3
    assert not peering.standalone


def test_a_peering_object_that_never_comes_is_one_line_and_exit() -> None:
    api = PeeringApi(refusals=10**6)
    with pytest.raises(MissingPrerequisite, match=r"^peering connectors was asked for "
                                                  r"\(--peering\), but ClusterKopfPeering "
                                                  r"connectors does not exist"):
        decide(api, "connectors", [], required=True, wait_seconds=0)  # type: ignore[arg-type]
