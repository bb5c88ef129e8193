"""The watch table's selectors: what the API server is asked, and the second look."""

from __future__ import annotations

import kopf
from kopf._cogs.structs.references import Resource

from connectors.controller.watches import WATCHES, server_side_selectors

OURS = "app.kubernetes.io/managed-by=connectors-operator"


def resource(group: str, plural: str, kind: str) -> Resource:
    return Resource(group=group, version="v1", plural=plural, kind=kind, namespaced=True,
                    preferred=True, verbs=["list", "watch"])


def test_every_child_kind_is_selected_by_the_api_server() -> None:
    settings = kopf.OperatorSettings()
    server_side_selectors(settings)
    selectors = settings.watching.label_selectors
    assert selectors.collect(resource("", "secrets", "Secret")) == [OURS]
    assert selectors.collect(resource("", "configmaps", "ConfigMap")) == [OURS]
    assert selectors.collect(resource("", "services", "Service")) == [OURS]
    assert selectors.collect(resource("apps", "deployments", "Deployment")) == [OURS]
    assert selectors.collect(resource("batch", "cronjobs", "CronJob")) == [OURS]
    assert selectors.collect(resource("batch", "jobs", "Job")) == [
        f"{OURS},connectors.dev/connection"]
    assert selectors.collect(resource("", "pods", "Pod")) == [
        f"{OURS},connectors.dev/listener"]
    # The operator's own resources are all its own: no selector.
    assert selectors.collect(resource("connectors.dev", "connections", "Connection")) == []
    # A kind not in the table is not touched (kopf's own namespaces, peerings).
    assert selectors.collect(resource("", "namespaces", "Namespace")) == []


def test_the_handlers_check_the_selector_again() -> None:
    jobs = next(w for w in WATCHES if w.plural == "jobs")
    ours = {"app.kubernetes.io/managed-by": "connectors-operator"}
    assert jobs.matches({**ours, "connectors.dev/connection": "acme"})
    assert jobs.matches({**ours, "connectors.dev/connection": ""})  # present is enough
    assert not jobs.matches(ours)
    assert not jobs.matches({"connectors.dev/connection": "acme"})
    assert not jobs.matches({"app.kubernetes.io/managed-by": "helm",
                             "connectors.dev/connection": "acme"})
    assert not jobs.matches(None)
    connections = next(w for w in WATCHES if w.plural == "connections")
    assert connections.selector == ""
    assert connections.matches(None)
