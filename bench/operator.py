"""Benchmark: apply N Connections with their Credentials; measure time to all Ready.

    python bench/operator.py [--count 1000] [--json PATH] [--py-spy PATH]

Starts its own cluster (connectors.devcluster: the control plane and a real node,
root only) with the project's image (hack/image/build.sh), runs the operator as a
process on this machine (so its requests and memory can be read), creates the
objects from 8 client threads, and watches Connections for Ready=True. A
partner-initiated Connection is Ready only once a listener pod on the node has
loaded its account, so the figure includes the kubelet's Secret refresh.
`--py-spy PATH` records the operator with py-spy (collapsed stacks, for flamegraph tools).

Reports: the time from the first create to the last Ready, the median
and 95th percentile of create-to-Ready latency, the operator's API requests per
Connection (its own count, printed when it stops; kopf's few watch streams are not
in it) and its peak resident memory (VmHWM). Half the Connections are
partner-initiated (SFTP push, generated password: an account in the listener),
half platform-initiated (SFTP pull, generated key pair: a CronJob).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from connectors import devcluster

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk8s2rv++mP2HE7sJCttP3dpLMeUdqJy3KAu1b2tSyP"


def manifests(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    name = f"partner-{i:04d}"
    pull = i % 2 == 1
    credential = {
        "apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
        "metadata": {"name": name},
        "spec": {"type": "PublicKey" if pull else "Password", "username": f"p{i:04d}"},
    }
    spec: dict[str, Any] = {
        "direction": "Inbound", "dataType": "Conversions", "method": "SFTP",
        "methodology": "Pull" if pull else "Push", "credentialRef": {"name": name},
        "filenamePattern": "conversions_*.csv",
    }
    if pull:
        spec["remote"] = {"host": f"sftp{i}.partner.example", "folder": "/outgoing",
                          "hostKeys": [HOST_KEY]}
    connection = {"apiVersion": "connectors.dev/v1alpha1", "kind": "Connection",
                  "metadata": {"name": name}, "spec": spec}
    return credential, connection


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_processes(workdir: Path) -> dict[str, int]:
    """The control plane's and the node's processes of this run, by name."""
    found = {}
    for name in ("kube-apiserver", "etcd", "kube-controller-manager", "kubelet"):
        pids = subprocess.run(["pgrep", "-f", f"/{name} .*{workdir}"], text=True,
                              stdout=subprocess.PIPE).stdout.split()
        if pids:
            found[name] = int(pids[0])
    return found


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--py-spy", help="record the operator with py-spy into this file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="connectors-bench-"))
    archive = subprocess.run([str(REPO / "hack/image/build.sh")], check=True, text=True,
                             stdout=subprocess.PIPE).stdout.strip().splitlines()[-1]
    # Stopped from outside, still take the node down: only one can run on a machine.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    plane = devcluster.up_node(workdir / "cluster")
    try:
        return measure(args, workdir, plane, archive)
    finally:
        plane.stop()


def measure(args: argparse.Namespace, workdir: Path, plane: devcluster.NodeCluster,
            archive: str) -> int:
    plane.import_image(archive)
    kubectl = str(devcluster.build_binaries() / "kubectl")
    env = {**os.environ, "KUBECONFIG": plane.kubeconfig}
    subprocess.run([kubectl, "apply", "--server-side", "-f", str(REPO / "crds")], env=env,
                   check=True, capture_output=True)
    subprocess.run([kubectl, "wait", "--for=condition=Established", "--all", "crd"], env=env,
                   check=True, capture_output=True)
    subprocess.run([kubectl, "create", "namespace", NAMESPACE], env=env, check=True,
                   capture_output=True)
    # What the chart gives the listeners and the processor: the ClusterRole that
    # lets them report (the operator binds it in each namespace).
    helm = subprocess.run([str(REPO / "hack/helm/build.sh")], check=True, text=True,
                          stdout=subprocess.PIPE).stdout.strip().splitlines()[-1]
    role = subprocess.run([helm, "template", "connectors", str(REPO / "charts/connectors"),
                           "--kube-version", "1.36.0",
                           "--show-only", "templates/listener-clusterrole.yaml"],
                          check=True, text=True, stdout=subprocess.PIPE).stdout
    subprocess.run([kubectl, "apply", "-f", "-"], input=role, text=True, env=env, check=True,
                   capture_output=True)
    log_path = workdir / "operator.log"
    operator = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "run", "--standalone", "-n", NAMESPACE,
         "--image", "localhost/connectors:dev", "--image-pull-policy", "Never",
         "--data-storage-class", "local-path", "--metrics-port", "0"],
        env=env,
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "-o", args.py_spy,
                                    "--pid", str(operator.pid), "--rate", "50"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = config.new_client_from_config(config_file=plane.kubeconfig)
        custom = client.CustomObjectsApi(api)
        created: dict[str, float] = {}
        ready: dict[str, float] = {}
        done = threading.Event()

        def watch_ready() -> None:
            stream = watch.Watch()
            for event in stream.stream(custom.list_namespaced_custom_object, "connectors.dev",
                                       "v1alpha1", NAMESPACE, "connections",
                                       timeout_seconds=int(args.timeout)):
                obj = event["object"]
                name = obj["metadata"]["name"]
                conditions = (obj.get("status") or {}).get("conditions") or []
                if name not in ready and any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in conditions):
                    ready[name] = time.monotonic()
                    if len(ready) == args.count:
                        done.set()
                        stream.stop()

        watcher = threading.Thread(target=watch_ready, daemon=True)
        watcher.start()
        time.sleep(3)  # the operator's start-up and the watch, before the clock starts

        def create(i: int) -> None:
            credential, connection = manifests(i)
            custom.create_namespaced_custom_object("connectors.dev", "v1alpha1", NAMESPACE,
                                                   "credentials", credential)
            created[connection["metadata"]["name"]] = time.monotonic()
            custom.create_namespaced_custom_object("connectors.dev", "v1alpha1", NAMESPACE,
                                                   "connections", connection)

        processes = {"operator": operator.pid, **cluster_processes(workdir)}
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.count)))
        applied = time.monotonic() - start
        all_ready = done.wait(args.timeout)
        finished = time.monotonic()
        peak = peak_rss_mb(operator.pid)
        cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 1)
               for name, pid in processes.items()}
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=120)
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=60)
    finally:
        if operator.poll() is None:  # stopped early: never leave it running
            operator.kill()
            operator.wait()
    log = log_path.read_text(errors="replace")
    requests = re.search(r"stopped after (\d+) API requests", log)
    routes = re.search(r"API requests by route: (.*)", log)

    latencies = sorted(ready[n] - created[n] for n in ready if n in created)
    result = {
        "connections": args.count,
        "all_ready": all_ready,
        "ready": len(ready),
        "apply_seconds": round(applied, 1),
        "first_create_to_last_ready_seconds": round(max(ready.values()) - start, 1)
        if ready else None,
        "latency_p50_seconds": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_seconds": round(latencies[int(0.95 * (len(latencies) - 1))], 2)
        if latencies else None,
        "operator_api_requests": int(requests.group(1)) if requests else None,
        "operator_api_requests_per_connection": round(int(requests.group(1)) / args.count, 2)
        if requests else None,
        "operator_peak_rss_mb": round(peak, 1),
        "operator_api_requests_by_route": routes.group(1) if routes else None,
        # Where the machine's two cores went meanwhile, in CPU seconds.
        "cpu_seconds": cpu,
        "elapsed_seconds": round(finished - start, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all_ready else 1


if __name__ == "__main__":
    raise SystemExit(main())
