"""Validation errors said in words, for the operator's conditions and `connectors validate`.

pydantic reports a field that does not match its `pattern` by quoting the
regular expression ("String should match pattern '^[a-z][a-z0-9._-]{0,31}$'"),
which leaves the reader to decode it. Each pattern of the API has its rule in
words here, next to nothing else, so both places that show pydantic's errors
say the same sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import NAME_PATTERN
from .connection import (
    EMAIL_PATTERN,
    FILENAME_PATTERN,
    FILENAME_PATTERN_MESSAGE,
    FOLDER_PATTERN,
    HOST_PATTERN,
    SCHEDULE_PATTERN,
)
from .credential import USERNAME_PATTERN
from .file_schema import COLUMN_NAME_PATTERN

PATTERN_WORDS: dict[str, str] = {
    NAME_PATTERN: (
        "must be a Kubernetes name: lower-case letters, digits and '-', starting and ending "
        "with a letter or digit, such as 'acme-sftp'"
    ),
    USERNAME_PATTERN: (
        "must be 1 to 32 characters of lower-case letters, digits, '.', '_' and '-', "
        "starting with a letter, such as 'acme'"
    ),
    HOST_PATTERN: (
        "must be a DNS name (letters, digits and '-' in labels separated by dots, such as "
        "'sftp.partner.example') or an IP address"
    ),
    SCHEDULE_PATTERN: (
        "must be five cron fields (minute hour day-of-month month day-of-week), such as "
        "'0 * * * *', or one of @yearly, @annually, @monthly, @weekly, @daily, @hourly"
    ),
    EMAIL_PATTERN: "must be an email address, such as 'reports@partner.example'",
    FILENAME_PATTERN: FILENAME_PATTERN_MESSAGE,
    FOLDER_PATTERN: (
        "must be one folder name of up to 63 letters, digits, '.', '_' and '-', starting "
        "with a letter or digit, such as 'clicks'"
    ),
    COLUMN_NAME_PATTERN: "must be a column name without control characters, such as 'OrderId'",
}

# pydantic's wording for the rest, said the way a person fixing a manifest needs to hear it.
_BY_TYPE = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field: remove it or check its spelling",
}


def error_message(error: Mapping[str, Any]) -> str:
    """One pydantic error item (from `ValidationError.errors()`) in words.

    Never quotes the input: a value may be a secret put in the wrong field.
    """
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        # A pattern without words is a bug of this module; still, never show the expression.
        return PATTERN_WORDS.get(str(pattern), "has characters that are not allowed here")
    return _BY_TYPE.get(str(error.get("type")), str(error.get("msg", "is not valid")))
