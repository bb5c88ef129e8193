"""Secrets never appear in what the product writes: checked per test and for
the whole suite.

`assert secret not in text` would make pytest show both sides on failure, and
so put the secret into the test output it was meant to protect: the checks
here name the place and the secret's length, never the value.

Suite-wide: every secret a test makes or the operator generates is
remembered (`remember`, and the namespace fixture harvests the Secrets of
each test namespace before deleting it), and every text the product produced
is collected (`record`: events and statuses; plus, at the end, every log file
and termination message under pytest's temporary folder and every test's
captured output). tests/conftest.py checks each against each at session end
and fails the run on a find.
"""

from __future__ import annotations

import re
from pathlib import Path

_SECRETS: set[str] = set()
_OUTPUTS: list[tuple[str, str]] = []
# Shorter values (a test's "guess") could match by chance and are no secrets.
MIN_LENGTH = 8
# The base64 body lines of a PEM or OpenSSH private key: each is secret by itself.
_KEY_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$", re.MULTILINE)


def assert_absent(secret: str, text: str, where: str) -> None:
    leaked = secret in text
    if leaked:
        raise AssertionError(f"a secret value ({len(secret)} characters) appears in {where}")


def is_secret_key(key: str) -> bool:
    """Secret keys that hold a secret value: passwords, private keys, tokens
    (kubernetes.io/basic-auth, ssh-auth and tls types, and the host key)."""
    lowered = key.lower()
    return (lowered in ("password", "ssh-privatekey", "tls.key", "token")
            or ("private" in lowered) or lowered.endswith("_key"))


def remember(value: str) -> None:
    """A secret value to look for in everything the suite produced."""
    if "PRIVATE KEY" in value:
        _SECRETS.update(_KEY_LINE.findall(value))
    elif len(value) >= MIN_LENGTH:
        _SECRETS.add(value)


def record(where: str, text: str) -> None:
    """Something the product showed (an event, a status, a log)."""
    if text:
        _OUTPUTS.append((where, text))


def record_files(root: Path) -> None:
    """Every log file and termination message under `root`."""
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        if path.is_file() and (path.suffix == ".log" or path.name == "termination-log"):
            try:
                record(str(path.relative_to(root)), path.read_text(errors="replace"))
            except OSError:
                continue


def leaks() -> list[str]:
    """Where any remembered secret appears: one line per find, without the value."""
    found = []
    for where, text in _OUTPUTS:
        for secret in _SECRETS:
            if secret in text:
                found.append(f"a secret value ({len(secret)} characters) appears in {where}")
    return found


def counts() -> tuple[int, int, int]:
    """(secrets, outputs, characters of output) checked."""
    return len(_SECRETS), len(_OUTPUTS), sum(len(text) for _, text in _OUTPUTS)
