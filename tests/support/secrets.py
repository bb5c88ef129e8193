"""Checking that a secret is absent without printing it when it is not.

`assert secret not in text` would make pytest show both sides on failure, and
so put the secret into the test output it was meant to protect.
"""

from __future__ import annotations


def assert_absent(secret: str, text: str, where: str) -> None:
    leaked = secret in text
    if leaked:
        raise AssertionError(f"a secret value ({len(secret)} characters) appears in {where}")
