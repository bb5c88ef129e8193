"""`kubectl connectors trigger` and `rotate` as pure functions of the objects: which
Connection or Credential they refuse and why, the Job made from a CronJob, and
what they print (the real API server's side is in tests/integration)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from connectors.kubectl import rotate, trigger
from connectors.planning.config import ANNOTATION_ROTATE

NOW = datetime.datetime(2026, 1, 27, 9, 30, 5, 123456, tzinfo=datetime.UTC)


def connection(direction: str, methodology: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "acme-clicks", "namespace": "team"},
            "spec": {"direction": direction, "methodology": methodology, "method": "SFTP",
                     "dataType": "Clicks", "credentialRef": {"name": "acme"}, **spec}}


@pytest.mark.parametrize(("direction", "methodology", "words"), [
    ("Inbound", "Push", "the partner starts each transfer by uploading"),
    ("Outbound", "Pull", "the partner starts each transfer by downloading"),
])
def test_a_connection_the_partner_starts_has_nothing_to_trigger(
    direction: str, methodology: str, words: str
) -> None:
    why = trigger.refusal(connection(direction, methodology))
    assert why is not None
    assert why.startswith(f"Connection acme-clicks is {direction} {methodology}: {words}")
    assert "nothing for the platform to trigger" in why
    assert why.endswith("kubectl connectors handoff acme-clicks -n team shows the partner "
                        "where to connect")


def test_a_suspended_connection_is_refused_with_the_way_to_resume() -> None:
    why = trigger.refusal(connection("Inbound", "Pull", suspend=True))
    assert why is not None
    assert why.startswith("Connection acme-clicks is suspended (spec.suspend: true)")
    assert "kubectl patch connection acme-clicks -n team" in why
    assert trigger.refusal(connection("Inbound", "Pull")) is None
    assert trigger.refusal(connection("Outbound", "Push")) is None


def test_no_cronjob_says_what_the_connection_is_waiting_for() -> None:
    body = connection("Inbound", "Pull")
    body["status"] = {"conditions": [{"type": "Ready", "status": "False",
                                      "reason": "CredentialNotFound", "message": "no acme"}]}
    assert trigger.no_cronjob(body) == (
        "Connection acme-clicks has no CronJob transfer-acme-clicks, from which a transfer is "
        "made: the operator makes it once the Connection is valid; Ready is False "
        "(CredentialNotFound): no acme")


CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "transfer-acme-clicks", "namespace": "team", "uid": "u-1",
                 "labels": {"a": "cronjob's own"}},
    "spec": {"schedule": "0 * * * *", "jobTemplate": {
        "metadata": {"labels": {"connectors.dev/connection": "acme-clicks"},
                     "annotations": {"note": "kept"}},
        "spec": {"backoffLimit": 2, "template": {"spec": {"containers": [{"name": "t"}]}}}}},
}


def test_the_job_is_what_kubectl_create_job_from_cronjob_makes() -> None:
    job = trigger.manual_job(CRONJOB, NOW)
    assert job["metadata"] == {
        "name": "transfer-acme-clicks-manual-20260127093005",
        "namespace": "team",
        "labels": {"connectors.dev/connection": "acme-clicks"},
        "annotations": {"note": "kept", "cronjob.kubernetes.io/instantiate": "manual"},
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                             "name": "transfer-acme-clicks", "uid": "u-1", "controller": True,
                             "blockOwnerDeletion": True}],
    }
    assert job["spec"] == CRONJOB["spec"]["jobTemplate"]["spec"]
    job["spec"]["backoffLimit"] = 9
    assert CRONJOB["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 2, "a copy, not a view"


def test_a_long_name_is_shortened_to_63_characters_and_stays_unique() -> None:
    long_a = trigger.job_name("transfer-" + "a" * 43, NOW)
    long_b = trigger.job_name("transfer-" + "a" * 42 + "b", NOW)
    assert len(long_a) == len(long_b) == 63
    assert long_a.endswith("-manual-20260127093005")
    assert long_a.startswith("transfer-aaaa")
    assert long_a != long_b
    assert trigger.job_name("transfer-x", NOW) == "transfer-x-manual-20260127093005"


def job(name: str, condition: str | None = None, created: str = "") -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True"}] if condition else []
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"conditions": conditions}}


def test_running_jobs_are_those_without_an_end() -> None:
    jobs = [job("b", created="2026-01-02"), job("done", "Complete"), job("a", created="2026-01-01"),
            job("broke", "Failed")]
    assert trigger.running(jobs) == ["a", "b"]
    assert trigger.finished(job("x", "Failed")) == "Failed"
    assert trigger.finished(job("x")) is None


SUMMARY = {"connection": "acme-clicks", "time": "2026-01-27T09:31:00Z", "files": 3,
           "bytes": 1200, "skipped": 1, "failed": 0, "outcome": "Succeeded", "message": "",
           "durationSeconds": 1.25}


def pod(created: str, message: str | None) -> dict[str, Any]:
    state = {"terminated": {"message": message}} if message else {"waiting": {}}
    return {"metadata": {"name": f"p-{created}", "creationTimestamp": created},
            "status": {"containerStatuses": [{"state": state}]}}


def test_the_summary_is_read_from_the_last_pod_that_wrote_one() -> None:
    failed = {**SUMMARY, "outcome": "Failed", "message": "login refused", "files": 0}
    pods = [pod("3", None), pod("2", json.dumps(SUMMARY)), pod("1", "log line\n"
                                                              + json.dumps(failed))]
    found = trigger.from_pods(pods)
    assert found == {k: v for k, v in SUMMARY.items() if k != "connection"}
    assert trigger.from_pods([pod("1", "not json")]) is None


def test_the_outcome_in_words_and_its_exit_status() -> None:
    ok = trigger.Outcome("acme-clicks", "team", "j1", job_state="Complete",
                         last_transfer={k: v for k, v in SUMMARY.items() if k != "connection"})
    assert ok.succeeded
    assert trigger.render_text(ok).splitlines() == [
        "Job:       j1", "Outcome:   Succeeded", "Files:     3 files, 1200 bytes; skipped 1, "
        "failed 0", "Duration:  1.25 s", "Finished:  2026-01-27T09:31:00Z"]
    bad = trigger.Outcome("acme-clicks", "team", "j2", job_state="Failed",
                          last_transfer={"outcome": "Failed", "message": "login refused",
                                         "files": 0, "bytes": 0})
    assert not bad.succeeded
    text = trigger.render_text(bad)
    assert "Outcome:   Failed" in text
    assert "Message:   login refused" in text
    assert "Logs:      kubectl logs job/j2 -n team" in text
    silent = trigger.Outcome("acme-clicks", "team", "j3", job_state="Failed")
    assert not silent.succeeded
    assert "the job left no summary: see kubectl logs job/j3 -n team" in \
        trigger.render_text(silent)
    as_json = json.loads(trigger.render_json(bad))
    assert (as_json["job"], as_json["succeeded"], as_json["lastTransfer"]["message"]) == (
        "j2", False, "login refused")


def credential(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "acme", "namespace": "team"}, "spec": spec,
            "status": {"secretName": "acme-credential"} if status is None else status}


def test_rotate_refuses_what_the_operator_does_not_generate() -> None:
    issued = rotate.refusal(credential({"type": "Password", "secretRef": {"name": "theirs"}}))
    assert issued is not None
    assert issued.startswith("Credential acme uses Secret theirs (spec.secretRef), whose "
                             "password or key a third party issued")
    partner = rotate.refusal(credential({"type": "PublicKey", "publicKey": "ssh-ed25519 AAAA"}))
    assert partner is not None
    assert partner.startswith("Credential acme holds the partner's public key")
    pending = rotate.refusal(credential({"type": "Password"}, {}))
    assert pending is not None
    assert "has no generated Secret yet" in pending
    assert rotate.refusal(credential({"type": "Password"})) is None
    assert rotate.refusal(credential({"type": "PublicKey"})) is None


def test_the_request_is_the_rotate_annotation_with_a_new_value() -> None:
    value = rotate.request_value(NOW)
    assert value == "2026-01-27T09:30:05.123456Z"
    assert rotate.annotation_patch(value) == {
        "metadata": {"annotations": {ANNOTATION_ROTATE: value}}}


def users(*specs: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"metadata": {"name": name}, "spec": {"direction": d, "methodology": m}}
            for name, d, m in specs]


def test_what_to_send_the_partner_after_a_password_rotation() -> None:
    result = rotate.Rotation("acme", "team", "Password", "acme-credential",
                             "2026-01-27T09:30:06Z", None, connections=users(
                                 ("acme-in", "Inbound", "Push"), ("acme-pull", "Inbound", "Pull")))
    lines = rotate.render_text(result).splitlines()
    assert lines[2] == "Rotated at:    2026-01-27T09:30:06Z (before: never rotated)"
    assert lines[3].startswith("What changed:  a new password in Secret acme-credential")
    assert lines[4] == ("Next:          acme-in: send the partner the new password to log in "
                        "with it: kubectl connectors handoff acme-in -n team --reveal")
    assert lines[5].strip() == (
        "acme-pull: send the partner the new password to set it on their server for the "
        "platform's login: kubectl connectors handoff acme-pull -n team --reveal")


def test_what_to_send_the_partner_after_a_key_pair_rotation() -> None:
    result = rotate.Rotation("acme", "team", "PublicKey", "acme-credential",
                             "2026-01-27T09:30:06Z", "2025-12-01T00:00:00Z",
                             fingerprints_before=["SHA256:old"], fingerprints_after=["SHA256:new"],
                             public_key="ssh-ed25519 AAAAnew acme@team",
                             connections=users(("acme-pull", "Inbound", "Pull")))
    text = rotate.render_text(result)
    assert "public key SHA256:old -> SHA256:new" in text
    assert "Public key:    ssh-ed25519 AAAAnew acme@team" in text
    assert "kubectl connectors handoff acme-pull -n team shows it" in text
    assert "--reveal" not in text, "the partner needs only the public half"
    nobody = rotate.Rotation("acme", "team", "Password", "s", "t", None)
    assert nobody.next_steps() == ["no Connection of namespace team uses it yet; once one "
                                   "does, kubectl connectors handoff CONNECTION -n team "
                                   "--reveal shows it"]


class StubCluster:
    """The few reads `follow` makes: a Job that finishes on the third look, a
    Connection the operator never records it in, and the Job's pods."""

    def __init__(self) -> None:
        self.looks = 0

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        self.looks += 1
        return job(name, "Failed" if self.looks >= 3 else None)

    def job_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        failed = {**SUMMARY, "outcome": "Failed", "message": "connection refused"}
        return [pod("1", json.dumps(failed))]

    def connection(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace}, "status": {}}


def test_without_the_operators_record_the_outcome_comes_from_the_pod(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from connectors.kubectl.main import follow

    outcome = trigger.Outcome("acme-clicks", "team", "j1")
    naps: list[float] = []
    follow(StubCluster(), outcome, timeout=60, sleep=naps.append,  # type: ignore[arg-type]
           record_wait=0)
    assert outcome.job_state == "Failed"
    assert outcome.source == "termination message"
    assert outcome.last_transfer["message"] == "connection refused"
    assert not outcome.succeeded
    assert naps == [1.0, 1.0]
    err = capsys.readouterr().err
    assert "pod p-1 Pending" in err
    assert "the operator has not recorded this run in status.lastTransfer" in err


def test_a_job_still_running_at_the_timeout_is_one_line_and_goes_on() -> None:
    from connectors.kubectl.cluster import PluginError
    from connectors.kubectl.main import follow

    with pytest.raises(PluginError) as caught:
        follow(StubCluster(), trigger.Outcome("acme-clicks", "team", "j1"),  # type: ignore[arg-type]
               timeout=0, sleep=lambda _: None)
    assert str(caught.value) == (
        "Job j1 has not finished after 0 s; it goes on: kubectl get job j1 -n team --watch, "
        "or kubectl connectors status -n team once it has")
