"""Runs a pod template's container as a local process: the kubelet's part, done by a test.

The control plane here has no kubelet, so end-to-end tests take the pod template
the operator wrote and do what a kubelet would: project every ConfigMap and
Secret volume into files, give the PersistentVolumeClaim and emptyDir volumes a
folder, resolve the environment (values and the downward API), and start the
container's command. The image's entrypoint is `connectors`, so the command is
`python -m connectors.cli` with the container's args.

What a pod gets from its node is given here in the test's terms, and only that:
mount paths become local folders (every argument and environment value that
names one is rewritten), the termination message file is a local file, and the
ServiceAccount's token comes as a kubeconfig made with `kubectl create token`.
A Secret exposed as an environment variable is refused: the operator must mount
secrets as files.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.conftest import Cluster


@dataclass
class LocalPod:
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]
    termination_log: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def local(self, pod_path: str) -> Path:
        """Where a path inside the pod lives on this machine."""
        for mount, local in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if pod_path == mount or pod_path.startswith(mount.rstrip("/") + "/"):
                return local / pod_path[len(mount):].lstrip("/")
        raise KeyError(f"{pod_path} is on no volume of the pod")

    def start(self, **extra_env: str) -> LocalPod:
        self.process = subprocess.Popen(
            self.argv, env={**self.env, **extra_env}, stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self

    def run(self, timeout: float = 600, **extra_env: str) -> int:
        self.start(**extra_env)
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _project(folder: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    for key, path in chosen.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])
        target.chmod(0o400)


def _service_account_kubeconfig(cluster: Cluster, namespace: str, account: str,
                                path: Path) -> Path:
    token = cluster.kubectl("create", "token", account, "-n", namespace,
                            "--duration=1h").stdout.strip()
    config = json.loads(Path(cluster.kubeconfig).read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path.write_text(json.dumps(config))
    return path


def materialize(cluster: Cluster, namespace: str, pod_spec: dict[str, Any], workdir: Path,
                data_volume: Path) -> LocalPod:
    """A LocalPod for the first container of `pod_spec` (a dict as the API returns it)."""
    api = client.CoreV1Api(cluster.api_client())
    container = pod_spec["containers"][0]
    volumes: dict[str, Path] = {}
    for volume in pod_spec.get("volumes") or []:
        name = volume["name"]
        folder = workdir / "volumes" / name
        if "configMap" in volume:
            config_map = api.read_namespaced_config_map(volume["configMap"]["name"], namespace)
            data = {k: v.encode() for k, v in (config_map.data or {}).items()}
            _project(folder, data, volume["configMap"].get("items"))
        elif "secret" in volume:
            secret = api.read_namespaced_secret(volume["secret"]["secretName"], namespace)
            data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
            _project(folder, data, volume["secret"].get("items"))
        elif "persistentVolumeClaim" in volume:
            folder = data_volume
            folder.mkdir(parents=True, exist_ok=True)
        elif "emptyDir" in volume:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            raise AssertionError(f"volume {name}: a kind this runner does not know: {volume}")
        volumes[name] = folder
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts") or []}

    def rewrite(value: str) -> str:
        for mount, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(local) + value[len(mount):]
        return value

    env = {"PATH": os.environ["PATH"], "HOME": str(workdir), "PYTHONUNBUFFERED": "1"}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = rewrite(item["value"])
            continue
        source = item["valueFrom"]
        assert "secretKeyRef" not in source, f"{item['name']}: a secret in the environment"
        field_path = source["fieldRef"]["fieldPath"]
        assert field_path == "metadata.namespace", field_path
        env[item["name"]] = namespace
    if pod_spec.get("automountServiceAccountToken", True) and pod_spec.get("serviceAccountName"):
        env["KUBECONFIG"] = str(_service_account_kubeconfig(
            cluster, namespace, pod_spec["serviceAccountName"], workdir / "sa.kubeconfig"))
    termination_log = workdir / "termination-log"
    termination_log.touch()
    env["CONNECTORS_TERMINATION_LOG"] = str(termination_log)
    argv = [sys.executable, "-m", "connectors.cli", *[rewrite(a) for a in container["args"]]]
    return LocalPod(argv, env, mounts, termination_log, workdir / "container.log")


def pod_template(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """The pod spec of a Deployment or CronJob, as the API server stores it."""
    api = cluster.api_client()
    if kind == "Deployment":
        obj = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
        template = obj.spec.template
    else:
        obj = client.BatchV1Api(api).read_namespaced_cron_job(name, namespace)
        template = obj.spec.job_template.spec.template
    spec: dict[str, Any] = api.sanitize_for_serialization(template.spec)
    return spec
