"""The `gpg` command line as a partner uses it: a keyring of its own in a test's
temporary folder, for checking the product's OpenPGP against the real tool."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class GpgCli:
    home: Path

    def __post_init__(self) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def run(self, *args: str, input: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--pinentry-mode",
             "loopback", "--passphrase", "", *args],
            input=input, capture_output=True, check=False, timeout=120,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {result.stderr.decode()}")
        return result

    def new_key(self, uid: str, algorithm: str = "ed25519", encryption: str | None = "cv25519",
                ) -> str:
        """A key pair in this keyring; returns its fingerprint."""
        self.run("--quick-gen-key", uid, algorithm, "sign" if encryption else "default",
                 "never")
        listing = self.run("--with-colons", "--list-keys", uid).stdout.decode()
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        if encryption:
            self.run("--quick-add-key", fingerprint, encryption, "encr", "never")
        return fingerprint

    def export(self, fingerprint: str) -> str:
        return self.run("--armor", "--export", fingerprint).stdout.decode()

    def export_secret(self, fingerprint: str) -> str:
        return self.run("--armor", "--export-secret-keys", fingerprint).stdout.decode()

    def import_key(self, armored: str) -> None:
        self.run("--import", input=armored.encode())

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                       capture_output=True, check=False, timeout=30)
