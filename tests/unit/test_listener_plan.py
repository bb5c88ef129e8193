"""The listener plan: FTP and SMTP always get a certificate and require TLS."""

from __future__ import annotations

import argparse

import pytest
from cryptography import x509

from connectors.api.accounts import AccountTable
from connectors.api.connection import ConnectionSpec
from connectors.controller.main import add_arguments, operator_config, parse_node_ports
from connectors.planning import accounts
from connectors.planning import listeners as plan
from connectors.planning.config import OperatorConfig
from connectors.planning.credentials import new_self_signed_certificate

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
EMPTY = accounts.AccountPlan(table=AccountTable(), owners=[], conflicts={})


def container(deployment: dict[str, object]) -> dict[str, object]:
    spec = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    return spec["containers"][0]  # type: ignore[no-any-return]


def env_of(deployment: dict[str, object]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(deployment)["env"]}  # type: ignore[index, union-attr]


def tls_volume(deployment: dict[str, object]) -> dict[str, object] | None:
    volumes = deployment["spec"]["template"]["spec"]["volumes"]  # type: ignore[index]
    return next((v for v in volumes if v["name"] == "tls"), None)


def test_ftp_and_smtp_mount_a_certificate_and_require_tls() -> None:
    for protocol in ("ftp", "smtp"):
        deployment = plan.listener_deployment("ns", protocol, OperatorConfig(), EMPTY)
        env = env_of(deployment)
        assert env["CONNECTORS_REQUIRE_TLS"] == "true"
        assert env["CONNECTORS_TLS_CERT_FILE"] == f"{plan.TLS_DIR}/tls.crt"
        volume = tls_volume(deployment)
        assert volume is not None
        assert volume["secret"]["secretName"] == plan.TLS_SECRET  # type: ignore[index]
    sftp = plan.listener_deployment("ns", "sftp", OperatorConfig(), EMPTY)
    assert tls_volume(sftp) is None
    assert "CONNECTORS_REQUIRE_TLS" not in env_of(sftp)


def test_the_platforms_own_certificate_secret_is_used_when_named() -> None:
    config = OperatorConfig(listener_tls_secret="partners-tls")
    volume = tls_volume(plan.listener_deployment("ns", "ftp", config, EMPTY))
    assert volume is not None
    assert volume["secret"]["secretName"] == "partners-tls"  # type: ignore[index]


def test_self_signed_certificate_covers_the_listener_services() -> None:
    names = plan.tls_names("acme")
    cert_pem, key_pem = new_self_signed_certificate(names)
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "connectors-ftp.acme.svc" in san.get_values_for_type(x509.DNSName)
    assert "connectors-smtp.acme.svc.cluster.local" in san.get_values_for_type(x509.DNSName)
    assert "PRIVATE KEY" in key_pem
    secret = plan.tls_secret("acme", cert_pem, key_pem)
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"]["connectors.dev/listener"] == "tls"


def test_listeners_get_the_operators_image_pull_policy_and_secrets() -> None:
    config = OperatorConfig(image="localhost/connectors:dev", image_pull_policy="Never",
                            image_pull_secrets=("regcred",))
    deployment = plan.listener_deployment("ns", "sftp", config, EMPTY)
    assert container(deployment)["image"] == "localhost/connectors:dev"
    assert container(deployment)["imagePullPolicy"] == "Never"
    pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    plain = plan.listener_deployment("ns", "sftp", OperatorConfig(), EMPTY)
    assert "imagePullSecrets" not in plain["spec"]["template"]["spec"]  # type: ignore[index]


def test_transfer_jobs_get_the_same_image_settings() -> None:
    from connectors.api.connection import ConnectionSpec
    from connectors.planning.jobs import transfer_cronjob

    spec = ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Clicks", "method": "SFTP", "methodology": "Pull",
        "credentialRef": {"name": "c"}, "filenamePattern": "clicks_*.csv",
        "remote": {"host": "sftp.partner.example", "folder": "/out",
                   "hostKeys": [HOST_KEY]},
        "schedule": "0 * * * *"})
    config = OperatorConfig(image="localhost/connectors:dev", image_pull_policy="Never",
                            image_pull_secrets=("regcred",))
    cronjob = transfer_cronjob("ns", "clicks", spec, "c-credential", "user", config, {})
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "localhost/connectors:dev"
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_node_port_services_keep_the_passive_ports_and_show_the_external_address() -> None:
    config = OperatorConfig(listener_service_type="NodePort",
                            listener_node_ports={"ftp": 30021},
                            listener_external_host="10.250.0.1",
                            ftp_passive_ports=(30100, 30101))
    service = plan.listener_service("ns", "ftp", config, EMPTY)
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service["spec"]["type"] == "NodePort"
    assert ports["ftp"]["nodePort"] == 30021
    assert ports["pasv-30100"]["nodePort"] == 30100
    assert ports["pasv-30101"]["nodePort"] == 30101
    sftp = plan.listener_service("ns", "sftp", config, EMPTY)
    assert "nodePort" not in sftp["spec"]["ports"][0]  # Kubernetes picks one
    from connectors.api.connection import ConnectionSpec

    spec = ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Clicks", "method": "FTP", "methodology": "Push",
        "credentialRef": {"name": "c"}, "filenamePattern": "clicks_*.csv"})
    shown = plan.endpoint("ns", "clicks", spec, "user", config, None)
    assert (shown["host"], shown["port"]) == ("10.250.0.1", 30021)
    inside = plan.endpoint("ns", "clicks", spec, "user", OperatorConfig(), None)
    assert (inside["host"], inside["port"]) == ("connectors-ftp.ns.svc", 21)


def test_exposure_per_protocol_with_annotations_ranges_and_local_traffic() -> None:
    config = OperatorConfig(
        listener_service_types={"sftp": "LoadBalancer", "smtp": "NodePort"},
        listener_service_annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
        listener_source_ranges=("203.0.113.0/24",),
        listener_external_traffic_policy="Local", listener_replicas=2)
    sftp = plan.listener_service("ns", "sftp", config, EMPTY)
    assert sftp["spec"]["type"] == "LoadBalancer"
    assert sftp["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert sftp["spec"]["externalTrafficPolicy"] == "Local"
    assert sftp["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    smtp = plan.listener_service("ns", "smtp", config, EMPTY)
    assert smtp["spec"]["type"] == "NodePort"
    assert "loadBalancerSourceRanges" not in smtp["spec"]  # only a LoadBalancer has them
    assert smtp["spec"]["externalTrafficPolicy"] == "Local"
    ftp = plan.listener_service("ns", "ftp", config, EMPTY)
    assert ftp["spec"]["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in ftp["spec"]  # a ClusterIP Service has none
    assert plan.listener_deployment("ns", "sftp", config, EMPTY)["spec"]["replicas"] == 2


def test_data_volume_claim_follows_the_settings() -> None:
    from connectors.planning.objects import data_claim

    claim = data_claim("ns", OperatorConfig(data_size="50Gi", data_storage_class="fast",
                                            data_access_mode="ReadWriteOnce"))
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "50Gi"}},
                             "storageClassName": "fast"}


# --- SMTP: the mail exchanger on 25 and the submission port on 587


def email_spec() -> ConnectionSpec:
    return ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Audiences", "method": "Email",
        "methodology": "Push", "credentialRef": {"name": "c"},
        "filenamePattern": "audiences_*.csv"})


def test_smtp_service_maps_25_and_587_onto_the_listeners_high_ports() -> None:
    service = plan.listener_service("ns", "smtp", OperatorConfig(), EMPTY)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"smtp": (25, 2525), "submission": (587, 2587)}
    deployment = plan.listener_deployment("ns", "smtp", OperatorConfig(), EMPTY)
    served = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}  # type: ignore[index, union-attr]
    assert served == {"smtp": 2525, "submission": 2587, "metrics": 9090}
    env = env_of(deployment)
    assert env["CONNECTORS_LISTEN_PORT"] == "2525"
    assert env["CONNECTORS_SUBMISSION_PORT"] == "2587"
    assert (env["CONNECTORS_MAX_MESSAGE_BYTES"], env["CONNECTORS_MAX_MESSAGES_PER_SENDER"],
            env["CONNECTORS_MAX_MESSAGES_PER_CLIENT"]) == (str(25 * 1024 * 1024), "60", "120")
    # Only the SMTP listener has a second port.
    ftp = plan.listener_deployment("ns", "ftp", OperatorConfig(), EMPTY)
    assert "CONNECTORS_SUBMISSION_PORT" not in env_of(ftp)


def test_listeners_serve_metrics_unless_turned_off() -> None:
    on = plan.listener_deployment("ns", "sftp", OperatorConfig(log_format="json"), EMPTY)
    template = on["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"] == {  # type: ignore[index]
        "prometheus.io/scrape": "true", "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics"}
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container(on)["ports"]  # type: ignore[index, union-attr, operator]
    assert env_of(on)["CONNECTORS_METRICS_PORT"] == "9090"
    assert env_of(on)["CONNECTORS_LOG_FORMAT"] == "json"
    off = plan.listener_deployment("ns", "sftp", OperatorConfig(workload_metrics=False), EMPTY)
    assert "annotations" not in off["spec"]["template"]["metadata"]  # type: ignore[index, operator]
    assert [p["name"] for p in container(off)["ports"]] == ["sftp"]  # type: ignore[index, union-attr]
    assert env_of(off)["CONNECTORS_METRICS_PORT"] == "0"
    assert env_of(off)["CONNECTORS_LOG_FORMAT"] == "text"


def test_submission_can_be_turned_off() -> None:
    config = OperatorConfig(smtp_submission=False)
    service = plan.listener_service("ns", "smtp", config, EMPTY)
    assert [p["name"] for p in service["spec"]["ports"]] == ["smtp"]
    deployment = plan.listener_deployment("ns", "smtp", config, EMPTY)
    assert env_of(deployment)["CONNECTORS_SUBMISSION_PORT"] == "0"
    assert [p["name"] for p in container(deployment)["ports"]] == ["smtp", "metrics"]  # type: ignore[index, union-attr]
    shown = plan.endpoint("ns", "mail", email_spec(), "user", config, None)
    assert "submissionPort" not in shown


def test_smtp_node_ports_and_the_endpoint_a_partner_is_told() -> None:
    config = OperatorConfig(listener_service_type="NodePort",
                            listener_node_ports={"smtp": 30025, "submission": 30587},
                            listener_external_host="smtp.partners.example.com",
                            email_domain="partners.example.com")
    service = plan.listener_service("ns", "smtp", config, EMPTY)
    node_ports = {p["name"]: p["nodePort"] for p in service["spec"]["ports"]}
    assert node_ports == {"smtp": 30025, "submission": 30587}
    shown = plan.endpoint("ns", "acme-audiences", email_spec(), "acme", config, None)
    assert shown == {"protocol": "smtp", "host": "smtp.partners.example.com", "port": 30025,
                     "submissionPort": 30587, "username": "acme",
                     "address": "acme-audiences@partners.example.com"}
    inside = plan.endpoint("ns", "acme-audiences", email_spec(), "acme", OperatorConfig(),
                           None)
    assert (inside["host"], inside["port"], inside["submissionPort"]) == (
        "connectors-smtp.ns.svc", 25, 587)


def test_operator_flags_name_the_submission_node_port_and_switch() -> None:
    assert parse_node_ports("smtp=30025,submission=30587") == {"smtp": 30025,
                                                               "submission": 30587}
    with pytest.raises(SystemExit, match="submission"):
        parse_node_ports("imap=30143")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert operator_config(parser.parse_args([])).smtp_submission is True
    off = operator_config(parser.parse_args(["--smtp-submission", "false"]))
    assert off.smtp_submission is False
    limits = operator_config(parser.parse_args([
        "--smtp-max-messages-per-sender", "5", "--smtp-max-messages-per-client", "0",
        "--smtp-max-message-bytes", "1048576"]))
    env = env_of(plan.listener_deployment("ns", "smtp", limits, EMPTY))
    assert (env["CONNECTORS_MAX_MESSAGE_BYTES"], env["CONNECTORS_MAX_MESSAGES_PER_SENDER"],
            env["CONNECTORS_MAX_MESSAGES_PER_CLIENT"]) == ("1048576", "5", "0")


@pytest.mark.parametrize("protocol", ["sftp", "ftp", "smtp"])
def test_every_listener_gets_the_connection_cap_and_its_memory(protocol: str) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = operator_config(parser.parse_args([
        "--listener-max-connections", "40", "--listener-max-unauthenticated", "12",
        "--listener-login-grace-seconds", "12.5", "--listener-memory-request", "80Mi",
        "--listener-memory-limit", "192Mi"]))
    deployment = plan.listener_deployment("ns", protocol, config, EMPTY)
    env = env_of(deployment)
    assert (env["CONNECTORS_MAX_CONNECTIONS"], env["CONNECTORS_MAX_UNAUTHENTICATED"],
            env["CONNECTORS_LOGIN_GRACE_SECONDS"], env["MALLOC_ARENA_MAX"]) == (
        "40", "12", "12.5", "2")
    assert container(deployment)["resources"] == {
        "requests": {"cpu": "50m", "memory": "80Mi"},
        "limits": {"cpu": "1", "memory": "192Mi"}}
    defaults = plan.listener_deployment("ns", protocol, OperatorConfig(), EMPTY)
    assert (env_of(defaults)["CONNECTORS_MAX_CONNECTIONS"],
            env_of(defaults)["CONNECTORS_MAX_UNAUTHENTICATED"],
            env_of(defaults)["CONNECTORS_LOGIN_GRACE_SECONDS"]) == ("100", "30", "30")
    assert container(defaults)["resources"]["limits"]["memory"] == "512Mi"  # type: ignore[index]


def test_listener_memory_is_the_listeners_own() -> None:
    """The processor keeps the shared figures: only listeners hold partners' sessions."""
    config = OperatorConfig(listener_memory_limit="1Gi")
    listener = plan.listener_deployment("ns", "sftp", config, EMPTY)
    assert container(listener)["resources"]["limits"]["memory"] == "1Gi"  # type: ignore[index]
    from connectors.planning.objects import resources
    assert resources(config)["limits"]["memory"] == "256Mi"


@pytest.mark.parametrize("flags", [
    ["--listener-max-connections", "10", "--listener-max-unauthenticated", "11"],
    ["--listener-max-connections", "-1"],
    ["--listener-login-grace-seconds", "-5"],
])
def test_connection_caps_that_cannot_work_stop_the_operator(flags: list[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit, match="--listener-max"):
        operator_config(parser.parse_args(flags))
