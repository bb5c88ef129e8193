"""`connectors validate --cluster`: what the live namespaces hold, read through the
kubeconfig, so that a Credential the files do not hold is looked up where it will
be used, and usernames are checked against the Connections already there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ..api.connection import ConnectionSpec
from ..api.credential import CredentialSpec
from .relations import Snapshot


class ClusterUnreadable(Exception):
    """The cluster could not be asked: no kubeconfig, unreachable, or forbidden."""


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig's context, for manifests that name none."""
    from kubernetes.config import ConfigException

    from ..controller.kube import current_namespace
    try:
        return current_namespace(kubeconfig, context)
    except (ConfigException, OSError) as error:
        raise ClusterUnreadable(f"cannot read the kubeconfig: {error}") from error


def read_snapshot(namespaces: Iterable[str], kubeconfig: str | None,
                  context: str | None) -> Snapshot:
    """Every valid Connection and Credential of these namespaces."""
    # Imported here: without --cluster the validator needs no Kubernetes client.
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from ..controller.kube import Kube, load_api_client

    snapshot = Snapshot()
    try:
        kube = Kube(load_api_client(kubeconfig, context))
        for namespace in sorted(set(namespaces)):
            for item in kube.list_in("Connection", [namespace]):
                spec = _spec(ConnectionSpec, item)
                if isinstance(spec, ConnectionSpec):
                    snapshot.connections[(namespace, item["metadata"]["name"])] = spec
            for item in kube.list_in("Credential", [namespace]):
                spec = _spec(CredentialSpec, item)
                if isinstance(spec, CredentialSpec):
                    snapshot.credentials[(namespace, item["metadata"]["name"])] = spec
    except ApiException as error:
        raise ClusterUnreadable(f"cannot read Connections and Credentials from the cluster: "
                                f"HTTP {error.status} {error.reason}") from error
    except (ConfigException, HTTPError, OSError) as error:
        raise ClusterUnreadable(f"cannot reach the cluster: {error}") from error
    return snapshot


def _spec(model: type[ConnectionSpec] | type[CredentialSpec],
          item: dict[str, Any]) -> ConnectionSpec | CredentialSpec | None:
    try:
        return model.model_validate(item.get("spec") or {})
    except ValidationError:
        return None
