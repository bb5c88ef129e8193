"""The built-in schema of every data type of the API.

Conversions follow the reference product's item-level template exactly:
`CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CustomerId,CurrencyCode,
Amount,Category,Sku,Quantity`, the lines of one order consecutive, and
conversions older than 88 days rejected (a contract error, row by row).

For the other data types the reference publishes no template, so the columns
below are choices, made to be what a partner's export most likely holds:
- Every schema names its columns in CamelCase like the conversions template,
  ids of the platform (CampaignId, MediaPartnerId, ActionTrackerId) are
  integers, ids of the partner (OrderId, Sku, CustomerId, ClickId...) are
  strings with a bound, money is a Decimal next to a CurrencyCode.
- Dates are ISO 8601 (EventDate, TransactionDate: DateTime, which takes a date
  alone as midnight). Clicks and card-linked transactions take the conversions'
  88 days as their maximum age: they feed attribution, which has that window.
- Amounts: conversion items and catalog prices are never negative; card-linked
  transactions may be (refunds and reversals); at most 4 decimal places, which
  covers every currency's minor unit and unit prices below it.
- Identities and audiences carry identifiers hashed as lowercase SHA-256 hex
  (never a plain email address or phone number: the schema refuses anything
  else in those columns).
- Card-linked transactions carry a card token, never a card number: a token of
  12 to 19 digits alone is refused, since it could be a PAN.
- Reports flow Outbound; their schema checks what the platform sends.
- Only Conversions has a Consecutive rule: the reference states it for order
  items; no other type has lines that belong together.
"""

from __future__ import annotations

from typing import get_args

from ..api.connection import DataType
from ..api.file_schema import Column, ColumnType, FileRule, FileSchema

SHA256_HEX = r"[0-9a-f]{64}"
URL = r"https?://\S+"


def _c(name: str, kind: ColumnType = "String", required: bool = False,
       max_length: int | None = None, **extra: object) -> Column:
    """A column; `extra` are the other Column fields, by their Python names."""
    return Column.model_validate(
        {"name": name, "type": kind, "required": required, "max_length": max_length, **extra}
    )


CONVERSIONS = FileSchema(
    columns=[
        _c("CampaignId", "Integer", required=True),
        _c("ActionTrackerId", "Integer", required=True),
        _c("EventDate", "DateTime", required=True, max_age_days=88),
        _c("OrderId", required=True, max_length=64),
        _c("ClickId", max_length=128),
        _c("CustomerId", max_length=128),
        _c("CurrencyCode", "CurrencyCode", required=True),
        _c("Amount", "Decimal", required=True, minimum=0, max_scale=4),
        _c("Category", max_length=128),
        _c("Sku", required=True, max_length=64),
        _c("Quantity", "Integer", required=True, minimum=1),
    ],
    rules=[FileRule(type="Consecutive", columns=["OrderId"])],
)

CLICKS = FileSchema(columns=[
    _c("CampaignId", "Integer", required=True),
    _c("ClickId", required=True, max_length=128),
    _c("EventDate", "DateTime", required=True, max_age_days=88),
    _c("MediaPartnerId", "Integer"),
    _c("LandingPageUrl", max_length=2048, pattern=URL),
    _c("ReferringUrl", max_length=2048, pattern=URL),
    _c("IpAddress", max_length=45),
    _c("UserAgent", max_length=1024),
    _c("CustomerId", max_length=128),
])

PRODUCT_CATALOG = FileSchema(columns=[
    _c("Sku", required=True, max_length=64),
    _c("Name", required=True, max_length=256),
    _c("Description", max_length=5000),
    _c("Url", required=True, max_length=2048, pattern=URL),
    _c("ImageUrl", max_length=2048, pattern=URL),
    _c("Price", "Decimal", required=True, minimum=0, max_scale=4),
    _c("CurrencyCode", "CurrencyCode", required=True),
    _c("Category", max_length=256),
    _c("Brand", max_length=128),
    _c("Availability", "Enum", required=True,
       values=["InStock", "OutOfStock", "PreOrder", "Discontinued"]),
    _c("Gtin", pattern=r"[0-9]{8}|[0-9]{12,14}"),
])

AUDIENCES = FileSchema(columns=[
    _c("AudienceId", required=True, max_length=128),
    _c("IdentifierType", "Enum", required=True,
       values=["EmailSha256", "PhoneSha256", "CustomerId", "DeviceId"]),
    _c("Identifier", required=True, max_length=256),
    _c("Action", "Enum", required=True, values=["Add", "Remove"]),
    _c("EventDate", "DateTime"),
])

IDENTITIES = FileSchema(columns=[
    _c("CustomerId", required=True, max_length=128),
    _c("EmailSha256", pattern=SHA256_HEX),
    _c("PhoneSha256", pattern=SHA256_HEX),
    _c("DeviceId", max_length=128),
    _c("EventDate", "DateTime"),
])

CARD_LINKED_TRANSACTIONS = FileSchema(columns=[
    _c("TransactionId", required=True, max_length=64),
    _c("CardToken", required=True, max_length=128, pattern=r"(?![0-9]{12,19}$).+"),
    _c("Last4", pattern=r"[0-9]{4}"),
    _c("MerchantId", required=True, max_length=64),
    _c("MerchantName", max_length=256),
    _c("Mcc", pattern=r"[0-9]{4}"),
    _c("TransactionDate", "DateTime", required=True, max_age_days=88),
    _c("Amount", "Decimal", required=True, max_scale=4),
    _c("CurrencyCode", "CurrencyCode", required=True),
    _c("Status", "Enum", required=True, values=["Authorized", "Cleared", "Refunded", "Reversed"]),
])

REPORTS = FileSchema(columns=[
    _c("Date", "Date", required=True),
    _c("CampaignId", "Integer", required=True),
    _c("MediaPartnerId", "Integer"),
    _c("Clicks", "Integer", required=True, minimum=0),
    _c("Actions", "Integer", required=True, minimum=0),
    _c("Sales", "Decimal", required=True, minimum=0, max_scale=4),
    _c("Payout", "Decimal", required=True, minimum=0, max_scale=4),
    _c("CurrencyCode", "CurrencyCode", required=True),
])

BUILTIN: dict[str, FileSchema] = {
    "Conversions": CONVERSIONS,
    "Clicks": CLICKS,
    "ProductCatalog": PRODUCT_CATALOG,
    "Audiences": AUDIENCES,
    "Identities": IDENTITIES,
    "CardLinkedTransactions": CARD_LINKED_TRANSACTIONS,
    "Reports": REPORTS,
}
assert set(BUILTIN) == set(get_args(DataType)), "every data type of the API has a schema"


def schema_for(data_type: str, inline: FileSchema | None = None) -> FileSchema:
    """The schema a Connection's files are checked against: its own when it
    carries one, else its data type's."""
    if inline is not None:
        return inline
    try:
        return BUILTIN[data_type]
    except KeyError:
        raise KeyError(f"no schema for data type {data_type!r}") from None
