"""The API server and `connectors validate` refuse exactly the same manifests.

Each case in tests/corpus/invalid.yaml names the field it is wrong about. The
API server (CRD schema and CEL rules, no operator running) must refuse it at
create time with a message naming that field; the offline validator must refuse
it with a problem on that field. Both must accept every example.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from connectors.api import GROUP, VERSION
from connectors.validate import validate_paths
from tests.conftest import Cluster

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus" / "invalid.yaml"
CASES: list[dict[str, Any]] = list(yaml.safe_load_all(CORPUS.read_text()))
PLURALS = {"Connection": "connections", "Credential": "credentials"}


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c["manifest"]["metadata"]["name"] for c in CASES}) == len(CASES)


def api_verdict(
    api: client.CustomObjectsApi, namespace: str, manifest: dict[str, Any]
) -> str | None:
    """None when the API server accepts the object, else its refusal message."""
    try:
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[manifest["kind"]], manifest,
            field_validation="Strict",
        )
    except ApiException as error:
        # 400 for unknown fields, 422 for schema and CEL rules; anything else is a fault.
        if error.status not in (400, 422):
            raise
        return str(error.body)
    return None


def offline_verdict(tmp_path: Path, manifest: dict[str, Any]) -> list[str]:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return [p.field_path for p in validate_paths([path])]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['field']}:{c['why']}" for c in CASES])
def test_both_refuse_naming_the_field(
    crds: Cluster, namespace: str, tmp_path: Path, case: dict[str, Any]
) -> None:
    api = client.CustomObjectsApi(crds.api_client())
    refusal = api_verdict(api, namespace, case["manifest"])
    offline = offline_verdict(tmp_path, case["manifest"])
    verdicts = {"api": refusal is not None, "offline": bool(offline)}
    assert verdicts == {"api": True, "offline": True}, (refusal, offline)
    assert case["field"] in refusal, refusal
    assert case["field"] in offline, offline


def test_both_accept_every_example(crds: Cluster, namespace: str) -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert validate_paths(examples) == []
    api_client = crds.api_client()
    custom = client.CustomObjectsApi(api_client)
    for path in examples:
        for manifest in yaml.safe_load_all(path.read_text()):
            if manifest["kind"] in PLURALS:
                assert api_verdict(custom, namespace, manifest) is None, path
            else:
                utils.create_from_dict(api_client, manifest, namespace=namespace)


@pytest.mark.parametrize("pattern", ["in/*.csv", "in\\*.csv", "[abc]*.csv"])
def test_a_bad_filename_pattern_reads_in_words_in_both(
    crds: Cluster, namespace: str, tmp_path: Path, pattern: str
) -> None:
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Connection",
        "metadata": {"name": "worded"},
        "spec": {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
                 "methodology": "Push", "credentialRef": {"name": "acme"},
                 "filenamePattern": pattern},
    }
    refusal = api_verdict(client.CustomObjectsApi(crds.api_client()), namespace, manifest)
    assert refusal is not None
    path = tmp_path / "worded.yaml"
    path.write_text(yaml.safe_dump(manifest))
    [offline] = validate_paths([path])
    # The API server's JSON escapes the backslash and quotes; compare on its decoded text.
    message = json.loads(refusal)["message"]
    for said in (message, offline.message):
        assert "filenamePattern is a file name, not a path" in said, said
        assert "* (any run of characters) and ? (one character)" in said, said
        assert "should match" not in said, said
        assert "^[^" not in said, said
