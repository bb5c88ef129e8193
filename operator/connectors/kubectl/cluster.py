"""What the plugin reads from and writes to the cluster, through the operator's Kube.

Reads only public material by default: the Connection and Credential with their
status, the listener's public host key and TLS certificate. A secret value is
read only for `--reveal`, and only after the reveal has been recorded.
`submissions` runs `connectors submissions` in the processor's pod (the exec API),
which reads the submission history on the data volume. Two commands write: `trigger`
creates a Job from a Connection's CronJob, and `rotate` sets a Credential's rotate
annotation.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL

from ..clock import now_rfc3339
from ..controller.kube import Kube
from ..planning.config import LABEL_CONNECTION
from ..planning.credentials import certificate_facts, check_authorized_keys
from ..planning.listeners import HOST_KEY_FILE, HOST_KEY_SECRET, TLS_SECRET, listener_name
from . import processor
from .facts import ListenerKeys

PROTOCOL_OF_METHOD = {"SFTP": "sftp", "FTP": "ftp", "Email": "smtp"}
# The plugin's name in managedFields, for what it creates and changes.
FIELD_MANAGER = "kubectl-connectors"


class PluginError(Exception):
    """Something the user must fix or know, said in one line."""


def _decoded(secret: dict[str, Any] | None, key: str) -> str | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


@dataclass
class Cluster:
    kube: Kube

    def connection(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.kube.get("Connection", namespace, name)
        if found is None:
            raise PluginError(f"Connection {name} not found in namespace {namespace}")
        return found

    def credential(self, connection: dict[str, Any]) -> dict[str, Any] | None:
        ref = ((connection.get("spec") or {}).get("credentialRef") or {}).get("name")
        return self.kube.get("Credential", connection["metadata"]["namespace"], ref) \
            if ref else None

    def connections(self, namespaces: list[str]) -> list[dict[str, Any]]:
        return self.kube.list_in("Connection", namespaces)

    def listener_keys(self, connection: dict[str, Any]) -> ListenerKeys:
        """The public halves the partner pins: the SFTP host key's fingerprint when
        status does not show it, the FTPS/SMTP certificate's. Never the private keys."""
        namespace = connection["metadata"]["namespace"]
        spec = connection.get("spec") or {}
        endpoint = (connection.get("status") or {}).get("endpoint") or {}
        protocol = PROTOCOL_OF_METHOD.get(str(spec.get("method")), "")
        if protocol == "sftp" and not endpoint.get("hostKeyFingerprint"):
            public = _decoded(self._secret(namespace, HOST_KEY_SECRET), f"{HOST_KEY_FILE}.pub")
            prints = check_authorized_keys(public).fingerprints if public else []
            return ListenerKeys(host_key_fingerprint=prints[0] if prints else None)
        if protocol in ("ftp", "smtp"):
            pem = _decoded(self._secret(namespace, self._tls_secret(namespace, protocol)),
                           "tls.crt")
            return ListenerKeys(tls=certificate_facts(pem) if pem else None)
        return ListenerKeys()

    def _tls_secret(self, namespace: str, protocol: str) -> str:
        """The Secret the listener mounts as its certificate: the platform's own when the
        operator was given one, else the self-signed one it made."""
        deployment = self.kube.get("Deployment", namespace, listener_name(protocol)) or {}
        volumes = (((deployment.get("spec") or {}).get("template") or {}).get("spec")
                   or {}).get("volumes") or []
        for volume in volumes:
            if volume.get("name") == "tls" and volume.get("secret"):
                return str(volume["secret"]["secretName"])
        return TLS_SECRET

    def _secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.kube.get("Secret", namespace, name)
        except ApiException as error:
            if error.status == 403:
                return None  # the fingerprint is then left out, not the whole hand-off
            raise

    def whoami(self) -> str:
        """The user this kubeconfig authenticates as (a SelfSubjectReview)."""
        try:
            review = self.kube.request(
                "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        except ApiException:
            return "unknown"
        return str(((review or {}).get("status") or {}).get("userInfo", {}).get("username")
                   or "unknown")

    def reveal(self, credential: dict[str, Any], connection: str) -> str:
        """The password or private key, once the reveal is recorded in the Credential's
        status and an Event: without the record, nothing is shown."""
        meta = credential["metadata"]
        spec = credential.get("spec") or {}
        status = credential.get("status") or {}
        if spec.get("publicKey"):
            raise PluginError(f"Credential {meta['name']} holds the partner's public key: "
                              "there is nothing secret to reveal")
        key = "password" if spec.get("type") == "Password" else "ssh-privatekey"
        secret_name = status.get("secretName")
        value = _decoded(self.kube.get("Secret", meta["namespace"], secret_name)
                         if secret_name else None, key)
        if not value:
            raise PluginError(f"Credential {meta['name']} has no {key} yet: see kubectl "
                              f"describe credential {meta['name']}")
        user = self.whoami()
        try:
            self.kube.patch_status("Credential", meta["namespace"], meta["name"],
                                   {"revealedAt": now_rfc3339(), "revealedBy": user})
        except ApiException as error:
            raise PluginError(f"cannot record the reveal in Credential {meta['name']}'s "
                              f"status (HTTP {error.status}), so it is not shown") from error
        what = "password" if key == "password" else "private key"
        self.kube.event(credential, "Normal", "SecretRevealed",
                        f"the {what} in Secret {secret_name} was shown to {user} by kubectl "
                        f"connectors handoff --reveal, for Connection {connection}")
        return value

    def credential_named(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.kube.get("Credential", namespace, name)
        if found is None:
            raise PluginError(f"Credential {name} not found in namespace {namespace}")
        return found

    def users_of(self, namespace: str, credential: str) -> list[dict[str, Any]]:
        """The namespace's Connections that name this Credential, by name."""
        return sorted((c for c in self.kube.list_in("Connection", [namespace])
                       if ((c.get("spec") or {}).get("credentialRef") or {}).get("name")
                       == credential), key=lambda c: str(c["metadata"]["name"]))

    def request_rotation(self, credential: dict[str, Any], patch: dict[str, Any]) -> None:
        """Sets the rotate annotation (a merge patch of the metadata: needs `patch` on
        credentials)."""
        meta = credential["metadata"]
        self.kube.request("PATCH", self.kube.path("Credential", meta["namespace"], meta["name"]),
                          body=patch, query=[("fieldManager", FIELD_MANAGER)],
                          content_type="application/merge-patch+json")

    def cronjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get("CronJob", namespace, name)

    def transfer_jobs(self, namespace: str, connection: str) -> list[dict[str, Any]]:
        """The Jobs of a Connection's transfers, scheduled and manual."""
        return self.kube.list_in("Job", [namespace], selector=f"{LABEL_CONNECTION}={connection}")

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get("Job", namespace, name)

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return self.kube.list_in("Pod", [namespace], selector=f"batch.kubernetes.io/job-name={job}")

    def create_job(self, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        try:
            created: dict[str, Any] = self.kube.request(
                "POST", self.kube.path("Job", meta["namespace"]), body=job,
                query=[("fieldManager", FIELD_MANAGER)])
        except ApiException as error:
            if error.status == 409:
                raise PluginError(f"a Job named {meta['name']} exists already: trigger again "
                                  "in a second") from error
            raise
        return created

    def processor_pod(self, namespace: str) -> dict[str, Any]:
        """A Running and Ready pod of the namespace's processor, not being deleted."""
        pods = self.kube.list_in("Pod", [namespace], selector=processor.SELECTOR)
        pod = processor.pick(pods)
        if pod is None:
            raise PluginError(processor.no_processor(namespace, pods))
        return pod

    def exec_in(self, pod: dict[str, Any], command: list[str], stdout: BinaryIO,
                stderr: BinaryIO) -> int:
        """Runs `command` in the pod, copying its output as it comes; its exit status."""
        meta = pod["metadata"]
        core = client.CoreV1Api(self.kube.api)
        try:
            # binary: the bytes as the command wrote them, however the frames cut them.
            session = stream(core.connect_get_namespaced_pod_exec, meta["name"],
                             meta["namespace"], command=command,
                             container=processor.container(pod), stdin=False, stdout=True,
                             stderr=True, tty=False, binary=True, _preload_content=False)
        except ApiException as error:
            raise PluginError(f"cannot run {command[0]} {command[1]} in pod {meta['name']}: "
                              f"{_exec_refusal(error)}") from error
        try:
            while session.is_open():
                session.update(timeout=1)
                _copy(session, stdout, stderr)
            _copy(session, stdout, stderr)
            answer = session.read_channel(ERROR_CHANNEL)
        finally:
            session.close()
        code, why = processor.exit_status(answer.decode(errors="replace"))
        if code is None:
            raise PluginError(f"{command[0]} {command[1]} in pod {meta['name']}: {why}")
        return code


def _copy(session: Any, stdout: BinaryIO, stderr: BinaryIO) -> None:
    for channel, out in ((STDOUT_CHANNEL, stdout), (STDERR_CHANNEL, stderr)):
        data = session.read_channel(channel)
        if data:
            out.write(data)
            out.flush()


def _exec_refusal(error: ApiException) -> str:
    """What the API server said when it refused the exec. The websocket client
    words a refusal as its whole handshake; the Status in its body says it in one
    line."""
    cause = error.__context__
    body = getattr(cause, "resp_body", None)
    status = getattr(cause, "status_code", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return f"HTTP {status}: {message}"
    if status:
        return f"HTTP {status}"
    return str(error.reason or error)
