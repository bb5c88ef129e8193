"""When a listener Connection is Ready: a Ready pod serves its account as configured."""

from __future__ import annotations

import pytest

from connectors.api.connection import ConnectionSpec
from connectors.planning.config import OperatorConfig
from connectors.planning.readiness import (
    ListenerPod,
    listener_verdict,
    state_value,
    transfer_prerequisite,
)
from connectors.planning.status import encryption_verdict

TABLES = {"d-old": {"acme": "fp-1"}, "d-new": {"acme": "fp-1", "globex": "fp-2"},
          "d-rotated": {"acme": "fp-9", "globex": "fp-2"}}


@pytest.mark.parametrize(("pods", "state", "account", "phase", "expected"), [
    # No pod at all, or none Ready: the volume explains it when it is not bound.
    ([], {}, "fp-1", None, ("False", "ListenerNotReady")),
    ([], {}, "fp-1", "Pending", ("False", "VolumeNotBound")),
    ([ListenerPod("p1", "sftp", False)], {"p1": state_value("sftp", "d-new")}, "fp-1",
     "Bound", ("False", "ListenerNotReady")),
    # A Ready pod of another protocol serves nothing here.
    ([ListenerPod("p1", "ftp", True)], {"p1": state_value("ftp", "d-new")}, "fp-1", None,
     ("False", "ListenerNotReady")),
    # Ready, but the pod has not reported, or serves a table without this account.
    ([ListenerPod("p1", "sftp", True)], {}, "fp-1", None, ("False", "AccountNotLoaded")),
    ([ListenerPod("p1", "sftp", True)], {"p1": state_value("sftp", "d-old")}, "fp-2", None,
     ("False", "AccountNotLoaded")),
    # An older table that holds the account unchanged still serves it.
    ([ListenerPod("p1", "sftp", True)], {"p1": state_value("sftp", "d-old")}, "fp-1", None,
     ("True", "ListenerServing")),
    # A rotated password: the pod must have loaded the table with the new hash.
    ([ListenerPod("p1", "sftp", True)], {"p1": state_value("sftp", "d-new")}, "fp-9", None,
     ("False", "AccountNotLoaded")),
    # Two replicas, one of them behind: served.
    ([ListenerPod("p1", "sftp", True), ListenerPod("p2", "sftp", True)],
     {"p1": state_value("sftp", "d-old"), "p2": state_value("sftp", "d-rotated")}, "fp-9",
     None, ("True", "ListenerServing")),
    # A digest the operator does not know (written before its restart): not counted.
    ([ListenerPod("p1", "sftp", True)], {"p1": state_value("sftp", "d-unknown")}, "fp-1",
     None, ("False", "AccountNotLoaded")),
])
def test_listener_verdict(pods: list[ListenerPod], state: dict[str, str], account: str,
                          phase: str | None, expected: tuple[str, str]) -> None:
    verdict = listener_verdict("acme", "sftp", account, "acme", pods, state, TABLES, phase)
    assert (verdict.status, verdict.reason) == expected
    assert "connectors-sftp" in verdict.message


def test_messages_name_the_fix() -> None:
    volume = listener_verdict("acme", "sftp", "fp-1", "acme", [], {}, TABLES, "Pending")
    assert "kubectl describe pvc connectors-data" in volume.message
    assert "data.storageClass" in volume.message
    down = listener_verdict("acme", "sftp", "fp-1", "acme", [], {}, TABLES, "Bound")
    assert "kubectl describe deployment connectors-sftp" in down.message


def test_outbound_email_needs_a_relay() -> None:
    spec = ConnectionSpec.model_validate({
        "direction": "Outbound", "dataType": "Reports", "method": "Email",
        "methodology": "Push", "credentialRef": {"name": "c"},
        "filenamePattern": "report_*.csv",
        "remote": {"recipients": ["reports@partner.example"]}})
    missing = transfer_prerequisite(spec, OperatorConfig())
    assert missing is not None
    assert (missing.status, missing.reason) == ("False", "RelayNotConfigured")
    assert "--smtp-relay" in missing.message
    assert transfer_prerequisite(spec, OperatorConfig(smtp_relay="relay:25")) is None


def _ftp(**spec: object) -> ConnectionSpec:
    return ConnectionSpec.model_validate({
        "dataType": "Conversions", "method": "FTP", "credentialRef": {"name": "c"},
        "filenamePattern": "conversions_*.csv", **spec})


@pytest.mark.parametrize(("spec", "expected"), [
    (_ftp(direction="Inbound", methodology="Push"), ("True", "FtpsRequired")),
    (_ftp(direction="Inbound", methodology="Push", ftp={"allowPlainFtp": True}),
     ("False", "PlainFtpAllowed")),
    (_ftp(direction="Inbound", methodology="Pull",
          remote={"host": "ftp.partner.example", "folder": "/out"}), ("False", "PlainFtp")),
    (_ftp(direction="Inbound", methodology="Pull",
          remote={"host": "ftp.partner.example", "folder": "/out", "tls": "Explicit"}),
     ("True", "Ftps")),
])
def test_ftp_says_whether_it_is_encrypted(spec: ConnectionSpec,
                                          expected: tuple[str, str]) -> None:
    verdict = encryption_verdict(spec)
    assert verdict is not None
    assert (verdict.status, verdict.reason) == expected
    if verdict.status == "False":
        assert "readable" in verdict.message


def test_sftp_has_no_encryption_condition() -> None:
    spec = ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Conversions", "method": "SFTP",
        "methodology": "Push", "credentialRef": {"name": "c"}})
    assert encryption_verdict(spec) is None
