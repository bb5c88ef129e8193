"""The chart's alert rules under Prometheus' own rule engine: promtool (unpacked
by hack/install-deps.sh) checks the rendered PrometheusRule and runs it over
synthetic series, so each alert fires when it should and stays silent when a
Connection is Ready, suspended, recently successful or on a slow schedule."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_chart import helm, render

__all__ = ["helm"]

SERVERS = Path(os.environ.get("CONNECTORS_TEST_SERVERS", "/opt/connectors-test-servers"))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or str(SERVERS / "usr/bin/promtool")
    if not os.access(found, os.X_OK):
        pytest.skip("promtool is not installed (hack/install-deps.sh unpacks it)")
    return found


def rules_file(helm: str, path: Path, *sets: str) -> Path:
    docs = render(helm, "metrics.prometheusRule.enabled=true", *sets)
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def run_tests(promtool: str, rules: Path, tests: list[dict[str, Any]], work: Path) -> None:
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    spec = work / "tests.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m",
                                    "tests": tests}))
    result = subprocess.run([promtool, "test", "rules", spec.name], capture_output=True,
                            text=True, check=False, cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr


def alert(name: str, labels: dict[str, str], summary: str, description: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": "warning", **labels},
            "exp_annotations": {"summary": summary, "description": description}}


def test_not_ready_fires_after_fifteen_minutes_unless_suspended(
        helm: str, promtool: str, tmp_path: Path) -> None:
    rules = rules_file(helm, tmp_path / "rules.yaml")
    series = [
        {"series": 'connectors_operator_connection_ready{namespace="p",connection="down"}',
         "values": "0x30"},
        {"series": 'connectors_operator_connection_ready{namespace="p",connection="up"}',
         "values": "1x30"},
        {"series": 'connectors_operator_connection_ready{namespace="p",connection="paused"}',
         "values": "0x30"},
        {"series": 'connectors_operator_connection_suspended{namespace="p",connection="paused"}',
         "values": "1x30"},
        {"series": 'connectors_operator_connection_suspended{namespace="p",connection="down"}',
         "values": "0x30"},
    ]
    labels = {"alertname": "ConnectorsConnectionNotReady", "namespace": "p", "connection": "down"}
    firing = alert(
        "ConnectorsConnectionNotReady", labels,
        "Connection p/down has not been Ready for 15m",
        "A partner could not transfer now. kubectl describe connection down -n p shows the "
        "condition that is not True and why.")
    del firing["exp_labels"]["alertname"]
    run_tests(promtool, rules, [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [
            {"eval_time": "14m", "alertname": "ConnectorsConnectionNotReady", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "ConnectorsConnectionNotReady",
             "exp_alerts": [firing]},
        ]}], tmp_path)


def test_transfer_overdue_after_twice_the_schedule_with_a_floor(
        helm: str, promtool: str, tmp_path: Path) -> None:
    rules = rules_file(helm, tmp_path / "rules.yaml",
                       "metrics.prometheusRule.transferOverdueMinSeconds=3600")

    def connection(name: str, success: int, interval: int) -> list[dict[str, str]]:
        where = f'{{namespace="p",connection="{name}"}}'
        return [
            {"series": f"connectors_operator_last_transfer_success_timestamp_seconds{where}",
             "values": f"{success}x300"},
            {"series": f"connectors_operator_transfer_schedule_interval_seconds{where}",
             "values": f"{interval}x300"},
            {"series": f"connectors_operator_connection_suspended{where}",
             "values": f"{1 if name == 'paused' else 0}x300"},
        ]

    series = [
        # Hourly, last success at 0: overdue after 2 h (plus the 5 m of `for`).
        *connection("hourly", 0, 3600),
        # Every 15 minutes: twice is 30 m, but the floor is an hour.
        *connection("frequent", 0, 900),
        # Daily: not overdue within these 3 hours.
        *connection("daily", 0, 86400),
        # Hourly, succeeded at 2 h: not overdue at 3 h.
        *connection("recent", 7200, 3600),
        *connection("paused", 0, 3600),
    ]
    description = ("status.lastTransfer and the TransferFailed events say why: "
                   "kubectl describe connection {c} -n p.")

    def overdue(name: str, since: str) -> dict[str, Any]:
        return {"exp_labels": {"severity": "warning", "namespace": "p", "connection": name},
                "exp_annotations": {
                    "summary": f"No successful transfer of p/{name} for {since}",
                    "description": description.format(c=name)}}

    run_tests(promtool, rules, [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [
            {"eval_time": "50m", "alertname": "ConnectorsTransferOverdue", "exp_alerts": []},
            {"eval_time": "70m", "alertname": "ConnectorsTransferOverdue",
             "exp_alerts": [overdue("frequent", "1h 10m 0s")]},
            {"eval_time": "3h", "alertname": "ConnectorsTransferOverdue",
             "exp_alerts": [overdue("hourly", "3h 0m 0s"), overdue("frequent", "3h 0m 0s")]},
        ]}], tmp_path)


def test_ban_storm_counts_bans_per_namespace_and_protocol(
        helm: str, promtool: str, tmp_path: Path) -> None:
    rules = rules_file(helm, tmp_path / "rules.yaml")
    series = [
        # One ban a minute on SFTP in p; one every ten minutes on FTP in q.
        {"series": 'connectors_listener_bans_total{namespace="p",protocol="sftp",pod="a"}',
         "values": "0+1x30"},
        {"series": 'connectors_listener_bans_total{namespace="q",protocol="ftp",pod="b"}',
         "values": "0+0.1x30"},
    ]
    run_tests(promtool, rules, [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "ConnectorsBanStorm", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "ConnectorsBanStorm", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "namespace": "p", "protocol": "sftp"},
                "exp_annotations": {
                    "summary": "10 bans on the sftp listener of p within 10m",
                    "description": (
                        "Many failed logins: someone is guessing passwords, or a partner's "
                        "client uses an old one. The listener's audit log (logger "
                        "connectors.audit, event ban and login) names the addresses and "
                        "usernames.")}}]},
        ]}], tmp_path)
