"""The operator's few ways of talking to the Kubernetes API, over the official client.

Server-side apply for the children (idempotent: an unchanged object costs one
request and no write), create-only for generated secrets (a value that exists is
never replaced by accident), merge patches for status, and Events. Every call is
blocking; the reconcilers run them in a thread.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ..api.common import API_VERSION, GROUP, VERSION
from ..clock import now_rfc3339

log = logging.getLogger(__name__)

FIELD_MANAGER = "connectors-operator"
# kind -> (API path prefix, plural): the only kinds the operator writes.
PATHS = {
    "Secret": ("/api/v1", "secrets"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Event": ("/api/v1", "events"),
    "Pod": ("/api/v1", "pods"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "Job": ("/apis/batch/v1", "jobs"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Connection": (f"/apis/{GROUP}/{VERSION}", "connections"),
    "Credential": (f"/apis/{GROUP}/{VERSION}", "credentials"),
}


def load_api_client(kubeconfig: str | None = None,
                    context: str | None = None) -> client.ApiClient:
    """In-cluster credentials in a pod, else the kubeconfig file (KUBECONFIG or
    ~/.kube/config); a file or context named by the caller always wins."""
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config()
            configuration = client.Configuration.get_default_copy()
        except config.ConfigException:
            configuration = client.Configuration()
            config.load_kube_config(client_configuration=configuration)
    else:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context,
                                client_configuration=configuration)
    # Enough connections for the reconcile workers and the thread pool.
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


# The kinds of the operator's children, which it watches (watches.py): an apply
# of one may be skipped when nothing changed (Kube.apply).
WATCHED_KINDS = frozenset({"Secret", "ConfigMap", "Service", "Deployment", "CronJob"})
# How long a skipped apply may rest on what was last sent: a watch that lost its
# place re-lists, and a deletion in that gap is never an event, so each object is
# sent again at least this often (by the periodic resync).
APPLIED_KEPT_SECONDS = 1800.0


def route(path: str) -> str:
    """The resource a path names, without namespace and object names:
    /api/v1/namespaces/ns/secrets/x -> secrets; .../connections/x/status -> connections/status."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts and parts.index("namespaces") + 2 < len(parts):
        parts = parts[parts.index("namespaces") + 2:]
    else:
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    return "/".join(parts[:1] + parts[2:3])


def current_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's context, as kubectl picks it; "default" when
    the context names none."""
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


@dataclass
class Kube:
    api: client.ApiClient
    requests: int = 0
    # Per "METHOD resource[/subresource]": where the requests go, said when the operator stops.
    routes: Counter[str] = field(default_factory=Counter)
    # Per watched object the operator applied: the digest of what it sent, the
    # resourceVersion the server answered and when (see apply and observed).
    applied: dict[tuple[str, str, str], tuple[str, str, float]] = field(default_factory=dict)

    def path(self, kind: str, namespace: str, name: str | None = None) -> str:
        prefix, plural = PATHS[kind]
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def request(self, method: str, path: str, body: Any = None,
                query: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> Any:
        """One HTTP request; the decoded JSON answer; ApiException on any non-2xx status."""
        self.requests += 1
        self.routes[f"{method} {route(path)}"] += 1
        _method, url, headers, serialized, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(_method, url, header_params=headers, body=serialized,
                                     _request_timeout=30)
        data = response.read()
        if not 200 <= response.status <= 299:
            # The method and path say which permission or object is at fault; both are
            # free of secret values, unlike a request body.
            raise ApiException(status=response.status,
                               reason=f"{response.reason} on {method} {path}",
                               body=data.decode(errors="replace"))
        return json.loads(data) if data else None

    def wait_until_served(self, kinds: tuple[str, ...], poll: float = 0.5) -> None:
        """Blocks until the API server lists every kind, saying every 10 s what it waits for.

        Right after a CRD is installed the server answers 404, then 429 "storage is
        (re)initializing" for a while. kopf retries with growing pauses (up to 21 s,
        54 s in all), which left a fresh operator idle for most of a minute: so the
        operator waits here first, asking every half second.
        """
        next_report = time.monotonic()
        for kind in kinds:
            prefix, plural = PATHS[kind]
            while True:
                try:
                    self.request("GET", f"{prefix}/{plural}", query=[("limit", "1")])
                    break
                except ApiException as error:
                    if error.status not in (404, 429, 503):
                        raise
                    if time.monotonic() >= next_report:
                        hint = (": are the CRDs installed? kubectl apply -f crds/"
                                if error.status == 404 else "")
                        log.info("waiting for the API server to serve %s (HTTP %s)%s",
                                 plural, error.status, hint)
                        next_report = time.monotonic() + 10
                time.sleep(poll)

    def serves(self, group_version: str, plural: str) -> bool:
        """Whether the API server serves `plural` in `group_version`, from discovery
        (which every authenticated user may read)."""
        try:
            found = self.request("GET", f"/apis/{group_version}")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in (found or {}).get("resources", []))

    def namespace_names(self) -> list[str]:
        items = self.request("GET", "/api/v1/namespaces").get("items", [])
        return [item["metadata"]["name"] for item in items]

    def ensure_peering(self, kind: str, plural: str, name: str, namespace: str | None) -> bool:
        """Creates kopf's peering object `name` unless it exists; True when created."""
        prefix = "/apis/kopf.dev/v1" + (f"/namespaces/{namespace}" if namespace else "")
        try:
            self.request("GET", f"{prefix}/{plural}/{name}")
        except ApiException as error:
            if error.status != 404:
                raise
        else:
            return False
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        try:
            self.request("POST", f"{prefix}/{plural}",
                         body={"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": metadata},
                         query=[("fieldManager", FIELD_MANAGER)])
        except ApiException as error:
            if error.status == 409:  # made meanwhile by another replica
                return False
            raise
        return True

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.request("GET", self.path(kind, namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    def list_in(self, kind: str, namespaces: list[str], selector: str = "") -> list[dict[str, Any]]:
        """Objects of `kind` in these namespaces (names or glob patterns such as `team-*`),
        or in all of them when the list is empty."""
        prefix, plural = PATHS[kind]
        query = [("labelSelector", selector)] if selector else []
        if not namespaces or any(set(ns) & set("*?[") for ns in namespaces):
            items = self.request("GET", f"{prefix}/{plural}", query=query).get("items", [])
            return [item for item in items
                    if not namespaces or any(fnmatch.fnmatchcase(item["metadata"]["namespace"], ns)
                                             for ns in namespaces)]
        return [item for ns in namespaces
                for item in self.request("GET", f"{prefix}/namespaces/{ns}/{plural}",
                                         query=query).get("items", [])]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with force: the operator owns the fields it sets.

        An object of a kind the operator watches is sent only when it differs
        from what was last applied, when the object changed since (observed),
        or when APPLIED_KEPT_SECONDS have passed since it was sent. Otherwise
        each resync (every 5 minutes) would send again the CronJob and
        ConfigMap of every Connection the platform starts, changing nothing.
        Returns the server's answer, or the object as given when nothing
        needed sending."""
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        watched = obj["kind"] in WATCHED_KINDS
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
        known = self.applied.get(key)
        if (watched and known is not None and known[0] == digest
                and time.monotonic() - known[2] < APPLIED_KEPT_SECONDS):
            return obj
        result: dict[str, Any] = self.request(
            "PATCH",
            self.path(obj["kind"], meta["namespace"], meta["name"]),
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        if watched:
            self.applied[key] = (digest, str(result["metadata"].get("resourceVersion")),
                                 time.monotonic())
        return result

    def observed(self, kind: str, namespace: str, name: str,
                 resource_version: str | None) -> None:
        """A watch saw this object at `resource_version` (None: deleted). Unless it is
        the version the operator's own apply made, the next apply sends it again."""
        key = (kind, namespace, name)
        known = self.applied.get(key)
        if known is not None and known[1] != resource_version:
            self.applied.pop(key, None)

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Creates `obj`; None when an object of that name already exists."""
        meta = obj["metadata"]
        try:
            result: dict[str, Any] = self.request(
                "POST", self.path(obj["kind"], meta["namespace"]), body=obj,
                query=[("fieldManager", FIELD_MANAGER)],
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise
        return result

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion in obj: fails with 409 if someone wrote in between."""
        meta = obj["metadata"]
        result: dict[str, Any] = self.request(
            "PUT", self.path(obj["kind"], meta["namespace"], meta["name"]), body=obj,
            query=[("fieldManager", FIELD_MANAGER)],
        )
        return result

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """True when something was deleted; a missing object is not an error."""
        self.applied.pop((kind, namespace, name), None)
        try:
            self.request("DELETE", self.path(kind, namespace, name),
                         body={"propagationPolicy": "Background"})
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def patch_status(self, kind: str, namespace: str, name: str,
                     status: dict[str, Any]) -> None:
        """A JSON merge patch of the status subresource (lists in it are replaced whole)."""
        try:
            self.request("PATCH", self.path(kind, namespace, name) + "/status",
                         body={"status": status},
                         content_type="application/merge-patch+json")
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing left to report on
                raise

    def annotate(self, kind: str, namespace: str, name: str, annotations: dict[str, str]) -> None:
        """A JSON merge patch of an object's annotations; a missing object is not an error."""
        try:
            self.request("PATCH", self.path(kind, namespace, name),
                         body={"metadata": {"annotations": annotations}},
                         content_type="application/merge-patch+json")
        except ApiException as error:
            if error.status != 404:
                raise

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on `involved`. Messages name objects, never secret values."""
        meta = involved["metadata"]
        now = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", API_VERSION),
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request("POST", self.path("Event", meta["namespace"]), body=event)
        except ApiException as error:
            # An event is a courtesy; failing to post one must not fail the reconcile.
            log.warning("could not post event %s on %s/%s: HTTP %s", reason,
                        meta["namespace"], meta["name"], error.status)
