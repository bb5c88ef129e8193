"""The Helm chart: it lints, renders in both modes, and its RBAC is exactly enough.

helm is built from Go modules (hack/helm/build.sh), cached like the control plane.
The RBAC test installs the chart's ServiceAccount and roles into the control
plane, runs the operator with a token of that ServiceAccount, and runs the same
scenarios as test_operator.py; then it removes one verb and sees them fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from connectors.api.accounts import AccountTable
from connectors.controller.main import add_arguments, operator_config
from connectors.planning import listeners as listener_plan
from connectors.planning import processor as processor_plan
from connectors.planning.accounts import AccountPlan
from connectors.planning.config import OperatorConfig
from tests.conftest import Cluster
from tests.integration import operator_scenarios as scenarios
from tests.support.metrics import defined_names
from tests.support.operator import OperatorProcess, wait_until_watching
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "connectors"
RELEASE_NAMESPACE = "connectors-system"


@pytest.fixture(scope="module")
def helm() -> str:
    result = subprocess.run([str(REPO / "hack/helm/build.sh")], check=True, text=True,
                            stdout=subprocess.PIPE)
    return result.stdout.strip().splitlines()[-1]


def render(helm: str, *sets: str) -> list[dict[str, Any]]:
    # helm template assumes an old cluster unless told; the chart needs 1.29+ (CEL rules).
    argv = [helm, "template", "connectors", str(CHART), "--namespace", RELEASE_NAMESPACE,
            "--kube-version", "v1.36.3"]
    for value in sets:
        argv += ["--set", value]
    result = subprocess.run(argv, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_helm_lint_passes(helm: str) -> None:
    result = subprocess.run([helm, "lint", "--strict", str(CHART)], text=True,
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("value", "path"), [
    ("listeners.maxConnections=-1", "/listeners/maxConnections"),
    ("listeners.resources.limits.memory=lots", "/listeners/resources/limits/memory"),
])
def test_values_schema_refuses_bad_listener_caps(helm: str, value: str, path: str) -> None:
    result = subprocess.run([helm, "template", "x", str(CHART), "--kube-version", "v1.36.3",
                             "--set", value], text=True, capture_output=True, check=False)
    assert result.returncode != 0
    assert path in result.stderr


def test_values_schema_refuses_a_bad_mode(helm: str) -> None:
    result = subprocess.run([helm, "template", "x", str(CHART), "--kube-version", "v1.36.3",
                             "--set", "watch.mode=everywhere"],
                            text=True, capture_output=True, check=False)
    assert result.returncode != 0
    assert "/watch/mode" in result.stderr


def test_cluster_mode_renders_one_recreate_replica_and_a_cluster_role(helm: str) -> None:
    docs = render(helm)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ClusterRole", "connectors-operator") in kinds
    assert ("ClusterRole", "connectors-listener") in kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args
    assert "--peering=connectors" in args


def test_namespaced_mode_renders_roles_only_where_asked(helm: str) -> None:
    docs = render(helm, "watch.mode=namespaces", "watch.namespaces={team-a,team-b}")
    roles = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role")
    assert roles == ["team-a", "team-b"]
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"]


def rbac_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("ServiceAccount", "ClusterRole",
                                             "ClusterRoleBinding")]


def token_kubeconfig(cluster: Cluster, path: Path) -> str:
    token = cluster.kubectl("create", "token", "connectors-operator", "-n", RELEASE_NAMESPACE,
                            "--duration=2h").stdout.strip()
    admin = json.loads(Path(cluster.kubeconfig).read_text())
    admin["users"] = [{"name": "operator", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "operator"
    path.write_text(json.dumps(admin))
    return str(path)


@pytest.fixture(scope="module")
def chart_rbac(crds: Cluster, helm: str) -> Iterator[list[dict[str, Any]]]:
    docs = rbac_rules(render(helm, "peering.enabled=false"))
    crds.kubectl("create", "namespace", RELEASE_NAMESPACE)
    crds.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    yield docs
    crds.kubectl("delete", "-f", "-", "--ignore-not-found", input=yaml.safe_dump_all(docs))


def fresh_namespace(cluster: Cluster) -> str:
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(cluster.api_client()).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def test_operator_with_only_the_chart_rbac_passes_the_scenarios(
    crds: Cluster, chart_rbac: list[dict[str, Any]], tmp_path: Path
) -> None:
    kubeconfig = token_kubeconfig(crds, tmp_path / "operator.kubeconfig")
    namespace = fresh_namespace(crds)
    operator = OperatorProcess(kubeconfig, ["rbac-*"], tmp_path / "operator.log").start()
    wait_until_watching(crds, "rbac-")
    try:
        scenarios.run_all(crds, namespace)
    finally:
        operator.stop()
    # The sentinel namespace of wait_until_watching is deleted while the operator may
    # still write to it: creating in a terminating namespace is a 403 too, not RBAC's.
    refused = [line for line in operator.log().splitlines()
               if ("403" in line or "Forbidden" in line) and "rbac-ready-" not in line]
    assert refused == []


def test_one_missing_verb_is_seen(crds: Cluster, chart_rbac: list[dict[str, Any]],
                                  tmp_path: Path) -> None:
    role = next(d for d in chart_rbac
                if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "connectors-operator")
    crippled = json.loads(json.dumps(role))
    for rule in crippled["rules"]:
        if rule.get("resources") == ["cronjobs"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(crippled))
    kubeconfig = token_kubeconfig(crds, tmp_path / "operator.kubeconfig")
    namespace = fresh_namespace(crds)
    operator = OperatorProcess(kubeconfig, ["rbac-*"], tmp_path / "operator.log").start()
    wait_until_watching(crds, "rbac-")
    try:
        example = scenarios.REPO / "examples/02-inbound-pull-sftp-audiences.yaml"
        scenarios.apply(crds, namespace, example)
        eventually(lambda: "HTTP 403" in operator.log(), 90,
                   "the operator to report the forbidden CronJob apply")
        connection = scenarios.get(crds, namespace, "connections", "shandalear-audiences")
        assert scenarios.condition(connection, "Ready").get("status") != "True"
        assert scenarios.read(crds, "CronJob", namespace, "transfer-shandalear-audiences") is None
    finally:
        operator.stop()
        crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(role))


def test_exposure_values_reach_the_operators_settings(helm: str) -> None:
    """Values -> the operator's environment -> its settings, through its own parser."""
    docs = render(helm, "listeners.serviceTypes.sftp=LoadBalancer",
                  "listeners.serviceAnnotations.example\\.com/lb=internal",
                  "listeners.loadBalancerSourceRanges={203.0.113.0/24,198.51.100.0/24}",
                  "listeners.externalTrafficPolicy=Local", "listeners.replicas=2",
                  "listeners.maxConnections=60", "listeners.maxUnauthenticated=20",
                  "listeners.loginGraceSeconds=45", "listeners.resources.limits.memory=384Mi",
                  "data.accessMode=ReadWriteOnce")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e["value"]
           for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        parser = argparse.ArgumentParser()
        add_arguments(parser)  # the defaults come from the environment
        config = operator_config(parser.parse_args([]))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert config.listener_service_types == {"sftp": "LoadBalancer"}
    assert config.listener_service_annotations == {"example.com/lb": "internal"}
    assert config.listener_source_ranges == ("203.0.113.0/24", "198.51.100.0/24")
    assert config.listener_external_traffic_policy == "Local"
    assert config.listener_replicas == 2
    assert (config.listener_max_connections, config.listener_max_unauthenticated,
            config.listener_login_grace_seconds) == (60, 20, 45.0)
    assert (config.listener_memory_request, config.listener_memory_limit) == ("96Mi", "384Mi")
    assert config.data_access_mode == "ReadWriteOnce"


METRIC_NAME = re.compile(r"\bconnectors_[a-z_]+\b")
MONITORING = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_metrics_by_default_share_the_liveness_port_and_nothing_else_renders(helm: str) -> None:
    docs = render(helm)
    assert not [d for d in docs if d["kind"] in MONITORING]
    assert not [d for d in docs if d["kind"] == "ConfigMap"
                and "grafana_dashboard" in d["metadata"].get("labels", {})]
    container = operator_container(docs)
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["CONNECTORS_METRICS_PORT"], env["CONNECTORS_WORKLOAD_METRICS"],
            env["CONNECTORS_LOG_FORMAT"]) == ("8080", "true", "text")
    [service] = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]


def test_metrics_off_keeps_the_health_port_only(helm: str) -> None:
    docs = render(helm, "metrics.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert not [d for d in docs if d["kind"] in MONITORING or d["kind"] == "Service"]
    container = operator_container(docs)
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["CONNECTORS_METRICS_PORT"], env["CONNECTORS_WORKLOAD_METRICS"]) == ("0", "false")


def test_monitoring_objects_render_when_enabled_and_fit_what_they_select(helm: str) -> None:
    docs = render(helm, "metrics.serviceMonitor.enabled=true",
                  "metrics.serviceMonitor.labels.release=prometheus",
                  "metrics.podMonitor.enabled=true", "metrics.dashboard.enabled=true",
                  "metrics.prometheusRule.enabled=true",
                  "metrics.prometheusRule.transferOverdueMinSeconds=3600")
    by_kind = {d["kind"]: d for d in docs if d["kind"] in MONITORING}
    assert set(by_kind) == MONITORING
    [service] = [d for d in docs if d["kind"] == "Service"]
    monitor = by_kind["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    # The Service reaches the operator's pod and its port named metrics.
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert service["spec"]["selector"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()

    # The PodMonitor selects the pods the operator plans, by their port named metrics.
    pods = by_kind["PodMonitor"]["spec"]
    assert pods["namespaceSelector"] == {"any": True}
    config = OperatorConfig()
    for planned in (listener_plan.listener_deployment(
                        "ns", "sftp", config, AccountPlan(AccountTable(), [], {})),
                    processor_plan.processor_deployment("ns", config, [])):
        template = planned["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert pods["selector"]["matchLabels"].items() <= labels.items()
        [expression] = pods["selector"]["matchExpressions"]
        assert labels[expression["key"]] in expression["values"]
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert pods["podMetricsEndpoints"][0]["port"] in ports

    [dashboard] = [d for d in docs if d["kind"] == "ConfigMap"
                   and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    shipped = json.loads((CHART / "dashboards" / "connectors.json").read_text())
    assert json.loads(dashboard["data"]["connectors.json"]) == shipped
    queries = [t["expr"] for p in shipped["panels"] for t in p.get("targets", [])]
    assert len(queries) >= 20
    rules = by_kind["PrometheusRule"]["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["ConnectorsConnectionNotReady",
                                           "ConnectorsTransferOverdue", "ConnectorsBanStorm"]
    assert rules[0]["for"] == "15m"
    assert "3600" in rules[1]["expr"]
    # Every metric a panel or an alert reads is one the processes define.
    used = {name for text in [*queries, *(r["expr"] for r in rules)]
            for name in METRIC_NAME.findall(text)}
    assert used - defined_names() == set()
    assert {n.split("_")[1] for n in used} == {"operator", "listener", "processor"}


@pytest.mark.parametrize(("value", "path"), [
    ("metrics.port=9090", "/metrics/port"),
    ("metrics.prometheusRule.notReadyFor=soon", "/metrics/prometheusRule/notReadyFor"),
    ("metrics.serviceMonitor.scrape=true", "/metrics/serviceMonitor"),
    ("operator.logFormat=xml", "/operator/logFormat"),
])
def test_values_schema_refuses_bad_metrics_values(helm: str, value: str, path: str) -> None:
    result = subprocess.run([helm, "template", "x", str(CHART), "--kube-version", "v1.36.3",
                             "--set", value], text=True, capture_output=True, check=False)
    assert result.returncode != 0
    assert path in result.stderr


def test_log_format_and_metrics_values_reach_the_operators_settings(helm: str) -> None:
    env = operator_env(render(helm, "operator.logFormat=json", "metrics.enabled=false"))
    args = parsed_operator_args(env)
    assert (args.log_format, args.metrics_port) == ("json", 0)
    config = operator_config(args)
    assert (config.log_format, config.workload_metrics) == ("json", False)
    args = parsed_operator_args(operator_env(render(helm, "metrics.port=9100")))
    assert (args.metrics_port, operator_config(args).workload_metrics) == (9100, True)


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in operator_container(docs)["env"] if "value" in e}


def parsed_operator_args(env: dict[str, str]) -> argparse.Namespace:
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        parser = argparse.ArgumentParser()
        add_arguments(parser)  # the defaults come from the environment
        return parser.parse_args([])
    finally:
        os.environ.clear()
        os.environ.update(saved)
