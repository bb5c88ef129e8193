"""CustomResourceDefinitions generated from the pydantic models.

pydantic's JSON Schema is close to what Kubernetes needs but not the same: the
API server wants a structural schema (no $ref, no anyOf for optional fields, no
titles), and the cross-field rules travel as x-kubernetes-validations. This
module does that translation, and nothing else, so crds/*.yaml stay a pure
function of the models. A test fails when the checked-in files differ.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .common import GROUP, VERSION
from .connection import ConnectionSpec, ConnectionStatus
from .credential import CredentialSpec, CredentialStatus

# Keywords a structural schema may carry; everything else pydantic emits is dropped.
_KEEP = {
    "type", "description", "properties", "required", "items", "enum", "pattern",
    "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "default",
    "format", "x-kubernetes-validations", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inlines $ref, unwraps Optional (anyOf with null) and drops unsupported keywords."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        merged = {**options[0], **{k: v for k, v in node.items() if k not in ("anyOf",)}}
        if merged.get("default", 0) is None:
            del merged["default"]
        return _resolve(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key in ("x-kubernetes-validations", "enum", "default"):
            out[key] = value  # data, not schema: copied as they are
        elif key == "description":
            out[key] = " ".join(value.split())
        else:
            out[key] = _resolve(value, defs)
    # A free-form "default: false" on a boolean is fine; an empty list default is noise.
    if out.get("default") == []:
        del out["default"]
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model, as a CRD embeds it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    return schema


def _status_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = openapi_schema(model)
    conditions = schema["properties"]["conditions"]
    # One entry per condition type, merged by type (cert-manager's shape), so that
    # server-side apply and strategic tooling treat conditions as a map.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _ready_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Reason", "type": "string", "priority": 1,
         "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
        {"name": "Message", "type": "string", "priority": 1,
         "jsonPath": '.status.conditions[?(@.type=="Ready")].message'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _crd(kind: str, plural: str, short: str, description: str,
         spec: type[BaseModel], status: type[BaseModel],
         columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["connectors"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns + _ready_columns(),
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": description,
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": openapi_schema(spec),
                        "status": _status_schema(status),
                    },
                }},
            }],
        },
    }


def connection_crd() -> dict[str, Any]:
    return _crd(
        "Connection", "connections", "conn",
        "A Connection is one exchange of batch files with a partner: a direction, a data "
        "type, a method (SFTP, FTP or Email), a methodology (Push or Pull) and a Credential.",
        ConnectionSpec, ConnectionStatus,
        [
            {"name": "Direction", "type": "string", "jsonPath": ".spec.direction"},
            {"name": "Type", "type": "string", "jsonPath": ".spec.dataType"},
            {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
            {"name": "Methodology", "type": "string", "jsonPath": ".spec.methodology"},
        ],
    )


def credential_crd() -> dict[str, Any]:
    return _crd(
        "Credential", "credentials", "cred",
        "A Credential says who may log in to a listener, or how the platform logs in to a "
        "partner's server: a generated password, a partner's public key, a generated key "
        "pair, or a Secret a third party issued.",
        CredentialSpec, CredentialStatus,
        [
            {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
            {"name": "Username", "type": "string", "jsonPath": ".status.username"},
        ],
    )


def render_all() -> dict[str, str]:
    """File name -> YAML text, for every CRD."""
    header = "# Generated by `connectors crds` from operator/connectors/api/. Do not edit.\n"
    return {
        f"{crd['spec']['names']['plural']}.yaml": header
        + yaml.safe_dump(crd, sort_keys=False, width=100)
        for crd in (connection_crd(), credential_crd())
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", type=Path, action="append", dest="output_dirs",
                        help="folder to write the CRD files into (repeatable; default ./crds "
                             "and the Helm chart's charts/connectors/crds)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the files differ from the models")


DEFAULT_DIRS = (Path("crds"), Path("charts/connectors/crds"))


def run(args: argparse.Namespace) -> int:
    stale = []
    for folder in args.output_dirs or DEFAULT_DIRS:
        for name, text in render_all().items():
            path: Path = folder / name
            if path.exists() and path.read_text() == text:
                continue
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'written'}")
    return 1 if args.check and stale else 0
