"""The transfer job reads its Connection without the API models
(jobs/spec.py); these tests keep the two in step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.api.connection import ConnectionSpec
from connectors.jobs.clients.base import PermanentError
from connectors.jobs.spec import load_connection
from connectors.planning.jobs import transfer_config_map

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def platform_initiated_examples() -> list[tuple[str, ConnectionSpec]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Connection":
                spec = ConnectionSpec.model_validate(document["spec"])
                if spec.platform_initiated:
                    found.append((document["metadata"]["name"], spec))
    return found


def write_config(tmp_path: Path, name: str, spec: ConnectionSpec) -> Path:
    """connection.json exactly as the operator puts it in the job's ConfigMap."""
    config_map = transfer_config_map("team-a", name, spec, owner={})
    path = tmp_path / "connection.json"
    path.write_text(config_map["data"]["connection.json"])
    return path


def config(tmp_path: Path, spec: dict[str, Any]) -> Path:
    """A connection.json holding `spec`, written by hand."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"spec": spec}))
    return path


def test_examples_cover_every_platform_initiated_method() -> None:
    methods = {spec.method for _, spec in platform_initiated_examples()}
    assert methods == {"SFTP", "FTP", "Email"}


@pytest.mark.parametrize(
    ("name", "spec"), platform_initiated_examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_the_job_reads_what_the_operator_wrote(
    tmp_path: Path, name: str, spec: ConnectionSpec
) -> None:
    connection = load_connection(write_config(tmp_path, name, spec), name)
    assert connection.name == name
    assert connection.namespace == "team-a"
    read = connection.spec
    assert (read.direction, read.method, read.methodology) == (
        spec.direction, spec.method, spec.methodology,
    )
    assert read.filename_pattern == spec.filename_pattern
    assert read.display_name == spec.display_name
    assert spec.remote is not None
    assert read.remote.host == spec.remote.host
    assert read.remote.port == spec.remote.port
    assert read.remote.folder == spec.remote.folder
    assert read.remote.tls == spec.remote.tls
    assert read.remote.insecure_skip_tls_verify == spec.remote.insecure_skip_tls_verify
    assert read.remote.recipients == tuple(spec.remote.recipients or ())
    assert read.remote.delete_after_transfer == spec.remote.delete_after_transfer


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ({"host": "h"}, 22),
        ({"host": "h", "port": 2222}, 2222),
    ],
)
def test_sftp_port_defaults_as_documented(
    tmp_path: Path, remote: dict[str, Any], expected: int
) -> None:
    spec = {"direction": "Inbound", "method": "SFTP", "methodology": "Pull", "remote": remote}
    assert load_connection(config(tmp_path, spec), "c").spec.port == expected


def test_ftp_and_imap_ports_follow_the_tls_mode(tmp_path: Path) -> None:
    def port(method: str, tls: str | None) -> int:
        remote = {"host": "h", **({"tls": tls} if tls else {})}
        spec = {"direction": "Inbound", "method": method, "methodology": "Pull", "remote": remote}
        return load_connection(config(tmp_path, spec), "c").spec.port

    assert port("FTP", None) == 21
    assert port("FTP", "Explicit") == 21
    assert port("FTP", "Implicit") == 990
    assert port("Email", None) == 993
    assert port("Email", "STARTTLS") == 143


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"direction": "Sideways", "method": "SFTP", "methodology": "Pull"}, "spec.direction"),
        ({"direction": "Inbound", "methodology": "Pull"}, "spec.method"),
        ({"direction": "Inbound", "method": "SFTP", "methodology": "Pull",
          "remote": {"port": "22"}}, "spec.remote.port"),
        ({"direction": "Inbound", "method": "SFTP", "methodology": "Pull",
          "remote": {"deleteAfterTransfer": "yes"}}, "spec.remote.deleteAfterTransfer"),
        ({"direction": "Outbound", "method": "Email", "methodology": "Push",
          "remote": {"recipients": "a@example.com"}}, "spec.remote.recipients"),
    ],
)
def test_a_wrong_type_is_refused_naming_the_field(
    tmp_path: Path, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(PermanentError, match=rf"{field} must be"):
        load_connection(config(tmp_path, spec), "c")


def test_a_transfer_run_imports_neither_pydantic_nor_the_api_models() -> None:
    """Building the models costs about 0.2 s of every run (see jobs/spec.py)."""
    modules = [
        "connectors.cli", "connectors.jobs.main", "connectors.jobs.pull",
        "connectors.jobs.push", "connectors.jobs.mail_pull",
        "connectors.jobs.clients.sftp", "connectors.jobs.clients.ftp",
        "connectors.jobs.clients.imap", "connectors.jobs.clients.smtp",
    ]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'pydantic' or m.startswith('connectors.api')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
