"""The declarative schema: a built-in one per data type, coherent by construction,
plain JSON so that a Connection can carry one in its CRD."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
import yaml
from pydantic import ValidationError

from connectors.api.connection import DataType
from connectors.api.crd import openapi_schema
from connectors.api.file_schema import Column
from connectors.submissions import BUILTIN, FileSchema, schema_for
from connectors.submissions.builtin import CONVERSIONS
from connectors.submissions.currencies import CURRENCY_CODES


def test_every_data_type_of_the_api_has_a_builtin_schema() -> None:
    assert set(BUILTIN) == set(get_args(DataType))
    for data_type in get_args(DataType):
        assert schema_for(data_type) is BUILTIN[data_type]


def test_conversions_follow_the_reference_template() -> None:
    assert ",".join(CONVERSIONS.names) == (
        "CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CustomerId,CurrencyCode,Amount,"
        "Category,Sku,Quantity")
    assert CONVERSIONS.header_required
    assert CONVERSIONS.delimiter == ","
    assert [(rule.type, rule.columns) for rule in CONVERSIONS.rules] == [
        ("Consecutive", ["OrderId"])]
    ages = {column.name: column.max_age_days for column in CONVERSIONS.columns
            if column.max_age_days is not None}
    assert ages == {"EventDate": 88}


def test_an_inline_schema_wins_over_the_builtin_one() -> None:
    inline = FileSchema(columns=[Column(name="Anything")])
    assert schema_for("Conversions", inline) is inline
    with pytest.raises(KeyError, match="Unknown"):
        schema_for("Unknown")


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_schema_travels_as_plain_json_and_back(name: str) -> None:
    schema = BUILTIN[name]
    wire = json.loads(json.dumps(schema.model_dump(by_alias=True, exclude_none=True)))
    assert FileSchema.model_validate(wire) == schema
    assert "maxAgeDays" in json.dumps(wire) or name not in ("Conversions", "Clicks")


def test_a_schema_reads_from_yaml_as_a_connection_would_carry_it() -> None:
    schema = FileSchema.model_validate(yaml.safe_load("""
        headerRequired: false
        delimiter: ";"
        columns:
          - {name: OrderId, required: true, maxLength: 20}
          - {name: Day, type: Date, format: "%d/%m/%Y", maxAgeDays: 30}
          - {name: Kind, type: Enum, values: [A, B]}
        rules:
          - {type: Consecutive, columns: [OrderId]}
    """))
    assert schema.names == ("OrderId", "Day", "Kind")
    assert (schema.header_required, schema.delimiter) == (False, ";")
    assert schema.columns[1].format == "%d/%m/%Y"
    assert schema.columns[2].values == ["A", "B"]


def _walk(node: Any) -> list[dict[str, Any]]:
    found = [node] if isinstance(node, dict) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found += _walk(child)
    return found


def test_the_schema_fits_a_structural_crd_with_its_cel_rules() -> None:
    crd = openapi_schema(FileSchema)
    text = json.dumps(crd)
    for word in ("$ref", "anyOf", "allOf", "title"):
        assert word not in text
    types = {node["type"] for node in _walk(crd) if isinstance(node.get("type"), str)}
    assert types <= {"object", "array", "string", "integer", "boolean"}
    rules = [rule for node in _walk(crd) for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) == len(Column.cel_rules) + len(FileSchema.cel_rules)
    for rule in rules:
        assert rule["fieldPath"].startswith(".")
        assert len(rule["message"]) > 20


def base(**column: Any) -> dict[str, Any]:
    return {"columns": [{"name": "A", **column}]}


@pytest.mark.parametrize(("data", "complaint"), [
    (base(type="Enum"), "values lists the allowed values"),
    (base(values=["x"]), "values lists the allowed values"),
    (base(type="Integer", pattern="[0-9]+"), "pattern applies only to String"),
    (base(pattern="(unclosed"), "not a valid regular expression"),
    (base(format="%Y"), "format applies only to Date"),
    (base(type="Date", format="no directive"), "strptime format"),
    (base(type="Date", format="%Y-%m-%Q"), "strptime format"),
    (base(maxAgeDays=3), "maxAgeDays applies only to Date"),
    (base(type="Integer", minimum=5, maximum=1), "maximum must not be below minimum"),
    (base(minimum=1), "minimum and maximum apply only to Integer and Decimal"),
    (base(type="Integer", maxScale=2), "maxScale"),
    (base(type="Float"), "Input should be"),
    (base(required="yes"), "valid boolean"),
    (base(maxLength="10"), "valid integer"),
    (base(unknown=1), "Extra inputs are not permitted"),
    (base(name=""), "at least 1 character"),
    (base(name="A\nB"), "should match pattern"),
    ({"columns": []}, "at least 1 item"),
    ({"columns": [{"name": "A"}, {"name": "A"}]}, "column names must be unique"),
    ({**base(), "rules": [{"type": "Consecutive", "columns": ["B"]}]}, "every column a rule names"),
    ({**base(), "rules": [{"type": "Unique", "columns": ["A"]}]}, "Consecutive"),
    ({**base(), "delimiter": ":"}, "Input should be"),
])
def test_an_incoherent_schema_is_refused_with_a_readable_reason(
        data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FileSchema.model_validate(data)
    assert complaint in str(caught.value)


def test_currency_codes_are_iso_4217_shaped_and_leave_out_non_currencies() -> None:
    assert {"USD", "EUR", "GBP", "JPY", "XOF"} <= CURRENCY_CODES
    assert not {"XXX", "XTS", "XAU", "HRK", "usd"} & CURRENCY_CODES
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in CURRENCY_CODES)
