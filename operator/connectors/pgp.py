"""OpenPGP for the files themselves, with the real GnuPG (`gpg`) through python-gnupg.

Pure of Kubernetes: the operator calls it to make a Credential's key pair and to
read a partner's key, the transfer job to encrypt what it sends, the processor to
decrypt what lands.

Every call works in a temporary GNUPGHOME of its own (mode 0700) that is removed
afterwards, together with the gpg-agent that gpg may have started for it: no
keyring is shared between calls or threads, and nothing outlives the call. Every
gpg process has a deadline, after which it is killed. Files are streamed through
gpg (never held in memory) into a temporary name beside the target, which is
renamed into place only when gpg vouched for the whole result, so a failure never
leaves a partial target.

A private key never appears in a message, an exception or a log line: errors are
said from gpg's status lines, and python-gnupg's debug lines that would quote key
material are dropped (`_NoKeyMaterial`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg

log = logging.getLogger(__name__)

PUBLIC_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
PUBLIC_END = "-----END PGP PUBLIC KEY BLOCK-----"
PRIVATE_BEGIN = "-----BEGIN PGP PRIVATE KEY BLOCK-----"

KEY_TIMEOUT = 60.0
"""Seconds for a key operation (generate, read a key)."""
FILE_TIMEOUT_BASE = 60.0
FILE_TIMEOUT_RATE = 4 * 1024 * 1024
"""A file operation gets FILE_TIMEOUT_BASE seconds plus one second per this many
bytes: gpg streams at well over 50 MB/s, so only a stuck gpg reaches it."""

MIN_RSA_BITS = 2048
"""As for SSH keys: RSA (and ElGamal, DSA) keys under 2048 bits are refused."""
_WEAK_ALGORITHMS = {"1": "RSA", "2": "RSA", "16": "ElGamal", "17": "DSA"}

_BUFFER = 1024 * 1024
"""Bytes per write into gpg's stdin (python-gnupg's default is 16 KiB)."""


class PgpError(Exception):
    """An OpenPGP operation failed; the message says why in words a partner
    understands, and never holds key material."""


class _NoKeyMaterial(logging.Filter):
    """python-gnupg logs the first bytes of imported and exported keys at debug
    level: for a private key, that is part of the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be rendered is not shown either
            return False
        return "PRIVATE KEY" not in text


logging.getLogger("gnupg").addFilter(_NoKeyMaterial())


# ---- one gpg per call -----------------------------------------------------------------------


class _Gpg(gnupg.GPG):  # type: ignore[misc]
    """python-gnupg's GPG with a deadline: every gpg it starts is killed when
    the call's time is up, and `timed_out` then says so."""

    def __init__(self, binary: str, home: str, deadline: float, agent: bool) -> None:
        self._deadline = deadline
        self._timers: list[threading.Timer] = []
        self.timed_out = False
        self.last_result: Any = None
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GNUPG", "GPG_", "LC_", "LANG"))}
        # gpg's own messages in English: they are matched below, and shown.
        env["LC_ALL"] = "C"
        options = [
            # No passphrase is ever asked: a question would hang or fail late.
            "--pinentry-mode", "error",
            # Never reach the network for a key.
            "--no-auto-key-retrieve",
            "--no-auto-key-locate",
        ]
        if not agent:
            # Public keys need no gpg-agent: none is started.
            options.append("--no-autostart")
        super().__init__(gpgbinary=binary, gnupghome=home, env=env, options=options)
        self.buffer_size = _BUFFER

    def _open_subprocess(self, args: list[str], passphrase: bool = False) -> Any:
        process = super()._open_subprocess(args, passphrase)
        timer = threading.Timer(max(0.0, self._deadline - time.monotonic()), self._kill, (process,))
        timer.daemon = True
        timer.start()
        self._timers.append(timer)
        return process

    def _collect_output(self, process: Any, result: Any, writer: Any = None,
                        stdin: Any = None) -> Any:
        # What gpg said, kept for when python-gnupg raises afterwards (a broken
        # pipe: gpg stopped reading the input it refused).
        self.last_result = result
        return super()._collect_output(process, result, writer, stdin)

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            self.timed_out = True
            with contextlib.suppress(OSError):
                process.kill()

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()


def _gpg_binary() -> str:
    found = shutil.which(os.environ.get("CONNECTORS_GPG", "gpg"))
    if not found:
        raise PgpError("GnuPG (gpg) is not installed: the platform cannot encrypt or decrypt "
                       "OpenPGP files here; install the Debian package gnupg")
    return found


@contextlib.contextmanager
def _session(timeout: float, agent: bool = False) -> Iterator[_Gpg]:
    """A fresh GNUPGHOME (mkdtemp makes it 0700) for one call, removed afterwards.

    Only secret keys need a gpg-agent (`agent`): gpg starts one for the home
    as a daemon, which is stopped at the end."""
    binary = _gpg_binary()
    home = tempfile.mkdtemp(prefix="connectors-gpg-", dir=_homes())
    gpg: _Gpg | None = None
    try:
        deadline = time.monotonic() + timeout
        try:
            gpg = _Gpg(binary, home, deadline, agent)
        except (OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise PgpError(f"gpg did not answer within {timeout:.0f} s") from None
            raise PgpError(f"gpg does not run here: {exc}") from None
        yield gpg
    finally:
        if gpg is not None:
            gpg.close()
        if agent:
            _stop_agent(binary, home)
        shutil.rmtree(home, ignore_errors=True)


_SOCKET_PATH_MAX = 107
"""sun_path holds 108 bytes; gpg-agent's longest socket name is S.gpg-agent.browser."""


def _homes() -> str:
    """Where the temporary GNUPGHOMEs go: the temporary folder, unless its path
    is too long for gpg-agent's sockets in it; then /tmp."""
    base = tempfile.gettempdir()
    longest = len(os.fsencode(base)) + len("/connectors-gpg-12345678/S.gpg-agent.browser")
    if longest > _SOCKET_PATH_MAX and os.access("/tmp", os.W_OK):
        return "/tmp"
    return base


def _tool(binary: str, name: str) -> str | None:
    beside = Path(binary).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _run(command: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(command, capture_output=True, timeout=10, check=False, text=True)
        return done.stdout
    return ""


def _stop_agent(binary: str, home: str) -> None:
    """Stops the gpg-agent of `home` and removes its socket folder (under
    /run/user/<uid> when that exists).

    The agent is a daemon: its parent is the pid namespace's init. In a
    container that is this process (the image's entrypoint), which must then
    reap it, or every call would leave a zombie. Only that one pid is waited
    for: as init, nothing else reaps it, so its pid cannot be reused meanwhile."""
    gpgconf = _tool(binary, "gpgconf")
    if gpgconf is None:
        return
    agent_pid = None
    if os.getpid() == 1:
        connect = _tool(binary, "gpg-connect-agent")
        if connect is not None:
            said = _run([connect, "--homedir", home, "--no-autostart", "getinfo pid", "/bye"])
            match = re.search(r"^D (\d+)$", said, re.MULTILINE)
            agent_pid = int(match.group(1)) if match else None
    _run([gpgconf, "--homedir", home, "--kill", "all"])
    _run([gpgconf, "--homedir", home, "--remove-socketdir"])
    if agent_pid is not None:
        _reap(agent_pid)


def _reap(pid: int, patience: float = 5.0) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _file_timeout(size: int) -> float:
    return FILE_TIMEOUT_BASE + size / FILE_TIMEOUT_RATE


# ---- what gpg said ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Said:
    """gpg's status lines ([GNUPG:] KEYWORD args) and its other lines."""

    status: list[tuple[str, str]]
    lines: list[str]

    @classmethod
    def parse(cls, stderr: str) -> _Said:
        status, lines = [], []
        for line in (stderr or "").splitlines():
            if line.startswith("[GNUPG:] "):
                keyword, _, value = line[9:].partition(" ")
                status.append((keyword, value.strip()))
            elif line.strip():
                lines.append(line.strip())
        return cls(status, lines)

    def has(self, keyword: str) -> bool:
        return any(k == keyword for k, _ in self.status)

    def values(self, keyword: str) -> list[str]:
        return [v for k, v in self.status if k == keyword]

    def reason(self) -> str:
        """gpg's last own error line, without its "gpg: " prefix."""
        for line in reversed(self.lines):
            if line.startswith("gpg: "):
                return line[5:]
        return "gpg gave no reason"


def _result_said(result: Any) -> _Said:
    return _Said.parse(getattr(result, "stderr", "") or "")


# ---- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    fingerprint: str
    key_ids: tuple[str, ...]
    """Long key ids (16 hex) of the keys that encrypt: what a message names."""


def _split_uid(uid: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"\s*([^<>]*?)\s*<([^<>\s]+)>\s*", uid)
    if match:
        return match.group(1) or "connectors", match.group(2)
    if not uid.strip() or re.search(r"[<>\n]", uid):
        raise ValueError(f"{uid!r} is not a user id: use 'Name <address>' or a name")
    return uid.strip(), None


def generate_key_pair(uid: str, timeout: float = KEY_TIMEOUT) -> tuple[str, str, str]:
    """A new key pair without a passphrase: an ed25519 signing primary key with a
    cv25519 encryption subkey, user id `uid` ("connectors <cred@namespace>"),
    never expiring. Returns (private key armored, public key armored, fingerprint
    as 40 hex digits). The private key exists only in the returned string (and
    in the temporary GNUPGHOME, removed before this returns)."""
    name, email = _split_uid(uid)
    parameters = [
        "Key-Type: EDDSA",
        "Key-Curve: ed25519",
        "Key-Usage: sign",
        "Subkey-Type: ECDH",
        "Subkey-Curve: cv25519",
        "Subkey-Usage: encrypt",
        f"Name-Real: {name}",
        *([f"Name-Email: {email}"] if email else []),
        "Expire-Date: 0",
        "%no-protection",
        "%commit",
    ]
    with _session(timeout, agent=True) as gpg:
        result = gpg.gen_key("\n".join(parameters) + "\n")
        fingerprint = getattr(result, "fingerprint", "") or ""
        if gpg.timed_out:
            raise PgpError(f"generating the OpenPGP key pair took longer than {timeout:.0f} s")
        if not re.fullmatch(r"[0-9A-F]{40}", fingerprint):
            raise PgpError(f"gpg could not generate the key pair: {_result_said(result).reason()}")
        public = gpg.export_keys(fingerprint, armor=True)
        private = gpg.export_keys(fingerprint, secret=True, armor=True, expect_passphrase=False)
        if gpg.timed_out:
            raise PgpError(f"exporting the OpenPGP key pair took longer than {timeout:.0f} s")
    if not (isinstance(public, str) and public.startswith(PUBLIC_BEGIN)
            and isinstance(private, str) and private.startswith(PRIVATE_BEGIN)):
        raise PgpError("gpg generated the key pair but did not export it")
    return private, public, fingerprint


def _read_public(gpg: _Gpg, public_armored: str) -> _Key:
    """Imports one public key into `gpg`'s empty keyring and checks it can be
    encrypted to; ValueError says why not."""
    text = public_armored.strip()
    if "PRIVATE KEY BLOCK" in text:
        raise ValueError("this is a private key, which must never leave its owner: give the "
                         "partner's public key (gpg --armor --export KEY), never the secret one")
    if not (text.startswith(PUBLIC_BEGIN) and text.endswith(PUBLIC_END)):
        raise ValueError(f"not an ASCII-armored OpenPGP public key: it must start with "
                         f"{PUBLIC_BEGIN} and end with {PUBLIC_END} (gpg --armor --export KEY)")
    blocks = text.count(PUBLIC_BEGIN)
    if blocks != 1:
        raise ValueError(f"holds {blocks} key blocks: give exactly one public key")
    result = gpg.import_keys(text)
    if gpg.timed_out:
        raise PgpError("reading the OpenPGP key took too long")
    if int(getattr(result, "sec_read", 0) or 0) > 0:
        raise ValueError("holds a private key, which must never leave its owner: give the "
                         "public key only")
    keys = gpg.list_keys()
    if len(keys) != 1:
        if not keys:
            reason = _result_said(result).reason()
            raise ValueError(f"gpg could not read a public key from it ({reason})")
        raise ValueError(f"holds {len(keys)} keys: give exactly one public key")
    key = keys[0]
    fingerprint = str(key.get("fingerprint") or "")
    capabilities = str(key.get("cap") or "")
    validity = str(key.get("trust") or "")
    if validity == "r":
        raise ValueError(f"key {fingerprint} is revoked: ask the partner for their current key")
    if validity == "e":
        raise ValueError(f"key {fingerprint} has expired: ask the partner for a current key, or "
                         "to extend this one")
    if "E" not in capabilities:
        raise ValueError(f"key {fingerprint} has no key that can encrypt (only signing, or its "
                         "encryption subkeys expired or were revoked)")
    parts = [key, *(key.get("subkey_info") or {}).values()]
    encrypting = [p for p in parts if "e" in str(p.get("cap") or "")
                  and str(p.get("trust") or "") not in ("r", "e", "i")]
    for part in encrypting:
        algorithm = _WEAK_ALGORITHMS.get(str(part.get("algo")))
        bits = int(str(part.get("length") or 0) or 0)
        if algorithm and bits < MIN_RSA_BITS:
            raise ValueError(f"key {fingerprint} encrypts with {algorithm} of {bits} bits; at "
                             f"least {MIN_RSA_BITS} are needed (ed25519/cv25519 is better)")
    key_ids = tuple(str(p.get("keyid") or "") for p in encrypting)
    return _Key(fingerprint, key_ids)


def fingerprint_of(public_armored: str, timeout: float = KEY_TIMEOUT) -> str:
    """The fingerprint (40 hex digits) of one ASCII-armored OpenPGP public key.

    ValueError, in words, when the text is not exactly one public key that can
    be encrypted to (a private key, several keys, garbage, a revoked or expired
    key, no encryption subkey, RSA under 2048 bits). PgpError when gpg itself
    cannot run or takes too long."""
    with _session(timeout) as gpg:
        return _read_public(gpg, public_armored).fingerprint


def _read_private(gpg: _Gpg, private_armored: str) -> _Key:
    """Imports the platform's private key. Messages never quote it."""
    if PRIVATE_BEGIN not in private_armored:
        raise PgpError("the platform's OpenPGP private key is missing or not ASCII-armored; "
                       "check the PGPKey Credential's Secret (pgp-private-key.asc)")
    gpg.import_keys(private_armored)
    if gpg.timed_out:
        raise PgpError("reading the platform's OpenPGP private key took too long")
    secret = gpg.list_keys(secret=True)
    if len(secret) != 1:
        raise PgpError("gpg could not read the platform's OpenPGP private key; check the "
                       "PGPKey Credential's Secret (pgp-private-key.asc)")
    key = secret[0]
    parts = [key, *(key.get("subkey_info") or {}).values()]
    key_ids = tuple(str(p.get("keyid") or "") for p in parts if "e" in str(p.get("cap") or ""))
    return _Key(str(key.get("fingerprint") or ""), key_ids)


# ---- files -----------------------------------------------------------------------------------


def _temp_beside(target: Path, purpose: str) -> Path:
    """A hidden name in the target's folder, so the final rename is atomic."""
    tag = hashlib.sha256(target.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return target.with_name(f".{tag}.{secrets.token_hex(6)}.{purpose}")


def _commit(temp: Path, target: Path) -> None:
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)
    with contextlib.suppress(OSError):
        descriptor = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _spaced(fingerprint: str) -> str:
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


def decrypt_file(source: Path, target: Path, private_armored: str,
                 timeout: float | None = None) -> None:
    """Decrypts `source` (an OpenPGP message encrypted to the key pair whose
    private half is `private_armored`) into `target`, streaming.

    PgpError, with a message for the partner, when the file is not encrypted at
    all (plain data, or OpenPGP that is only signed or stored), encrypted with a
    passphrase, encrypted to another key (naming that key id and the expected
    one), cut short, damaged, or fails its integrity check (MDC); also when it
    carries no integrity protection. `target` is then not created, and no
    temporary file is left."""
    size = source.stat().st_size
    if size == 0:
        raise PgpError(f"{source.name} is empty: there is nothing to decrypt")
    seconds = timeout if timeout is not None else _file_timeout(size)
    temp = _temp_beside(target, "decrypting")
    try:
        with _session(seconds, agent=True) as gpg:
            key = _read_private(gpg, private_armored)
            failure: BaseException | None = None
            try:
                gpg.decrypt_file(str(source), output=str(temp))
            except (OSError, ValueError) as exc:
                # gpg stopped reading (it refused the input early): its status says why.
                failure = exc
            result = gpg.last_result
            if gpg.timed_out:
                raise PgpError(f"decrypting {source.name} took longer than {seconds:.0f} s; "
                               "stopped")
            said = _result_said(result)
            problem = _decrypt_problem(source.name, said, key,
                                       getattr(result, "returncode", None), failure)
            if problem:
                raise PgpError(problem)
            lengths = said.values("PLAINTEXT_LENGTH")
            if lengths and lengths[-1].isdigit() and int(lengths[-1]) != temp.stat().st_size:
                raise PgpError(f"{source.name} is damaged: it decrypted to "
                               f"{temp.stat().st_size} bytes where it declares {lengths[-1]}; "
                               "send it again")
        _commit(temp, target)
    finally:
        temp.unlink(missing_ok=True)


_TRUNCATED = ("problem reading source", "premature eof", "unexpected eof", "read error",
              "truncated", "unexpected end")
_HIDDEN = "0000000000000000"
_SIGNATURE_STATUS = ("ERRSIG", "NO_PUBKEY", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG")


def _decrypt_problem(name: str, said: _Said, key: _Key, returncode: int | None,
                     failure: BaseException | None) -> str | None:
    """None when gpg decrypted the whole message and its integrity check passed."""
    ours = ", ".join(key.key_ids) or key.fingerprint
    expected = f"the platform's key {ours} (fingerprint {_spaced(key.fingerprint)})"
    recipients = [v.split()[0] for v in said.values("ENC_TO") if v]
    decrypted = said.has("DECRYPTION_OKAY")
    aead = any(len(v.split()) > 2 and v.split()[2] != "0" for v in said.values("DECRYPTION_INFO"))
    protected = said.has("GOODMDC") or aead
    # A signature the platform cannot check (it holds no partner signing key)
    # makes gpg exit 2 after a complete, intact decryption; signatures are not
    # what decryptWith promises, so only such a status may explain the exit.
    signature_only = (any(said.has(k) for k in _SIGNATURE_STATUS)
                      and not said.has("FAILURE") and not said.has("ERROR"))
    if (failure is None and decrypted and protected and not said.has("BADMDC")
            and not said.has("DECRYPTION_FAILED") and (returncode == 0 or signature_only)):
        return None
    text = " ".join(said.lines).lower()
    if not recipients and not said.has("NEED_PASSPHRASE_SYM"):
        if said.has("PLAINTEXT") and not said.has("BEGIN_DECRYPTION"):
            return (f"{name} is not encrypted: it is an OpenPGP message that is only signed or "
                    f"stored, so anyone could read it on the way; encrypt it to {expected} "
                    "and send it again")
        if said.has("NODATA") or not said.has("BEGIN_DECRYPTION"):
            return (f"{name} is not encrypted: it holds no OpenPGP data (was it sent without "
                    f"encryption?); encrypt it to {expected} and send it again")
    if said.has("NEED_PASSPHRASE_SYM") and not recipients:
        return (f"{name} is encrypted with a passphrase, not to a key: the platform cannot "
                f"decrypt it; encrypt it to {expected} instead")
    if recipients and not said.has("DECRYPTION_KEY") and not decrypted:
        shown = [("a hidden recipient" if r == _HIDDEN else r) for r in recipients]
        if all(r == _HIDDEN for r in recipients) or said.has("NO_SECKEY") or said.has(
                "DECRYPTION_FAILED"):
            return (f"{name} was encrypted to key {', '.join(shown)}, not to {expected}: the "
                    "platform cannot decrypt it; encrypt it to the platform's public key and "
                    "send it again")
    truncated = any(hint in text for hint in _TRUNCATED)
    if truncated:
        return (f"{name} is incomplete: the encrypted data ends early (cut off during the "
                "transfer?); nothing was decrypted; send the whole file again")
    if said.has("BADMDC"):
        return (f"{name} failed its integrity check (MDC): it was altered after it was "
                "encrypted, or damaged on the way; nothing was decrypted; send it again")
    if decrypted and not protected:
        return (f"{name} has no integrity protection (no MDC): it could have been altered "
                "unnoticed, so it is refused; encrypt it with current OpenPGP software "
                "(GnuPG 2.2 or later does this by default)")
    reason = said.reason()
    if failure is not None and reason == "gpg gave no reason":
        reason = type(failure).__name__
    return (f"{name} is damaged or was altered after it was encrypted: it does not decrypt "
            f"cleanly ({reason}); nothing was decrypted; send it again")


def encrypt_file(source: Path, target: Path, public_armored: str,
                 timeout: float | None = None) -> None:
    """Encrypts `source` to the one public key `public_armored` into `target`
    (binary OpenPGP, what `.pgp` files hold), streaming, always with integrity
    protection. PgpError when the key cannot be used or gpg fails; `target` is
    then not created, and no temporary file is left."""
    size = source.stat().st_size
    seconds = timeout if timeout is not None else _file_timeout(size)
    temp = _temp_beside(target, "encrypting")
    try:
        with _session(seconds) as gpg:
            try:
                key = _read_public(gpg, public_armored)
            except ValueError as exc:
                raise PgpError(f"the partner's OpenPGP public key cannot be used: {exc}") from None
            result = gpg.encrypt_file(str(source), recipients=[key.fingerprint], armor=False,
                                      output=str(temp), always_trust=True)
            if gpg.timed_out:
                raise PgpError(f"encrypting {source.name} took longer than {seconds:.0f} s; "
                               "stopped")
            said = _result_said(result)
            begin = said.values("BEGIN_ENCRYPTION")
            fields = begin[0].split() if begin else []
            # BEGIN_ENCRYPTION <mdc_method> <cipher> [<aead>]: MDC (2) or AEAD, never neither.
            integrity = bool(fields) and (fields[0] == "2" or (len(fields) > 2
                                                               and fields[2] != "0"))
            if getattr(result, "returncode", 1) != 0 or not said.has("END_ENCRYPTION"):
                raise PgpError(f"gpg could not encrypt {source.name}: {said.reason()}")
            if not integrity:
                raise PgpError(f"gpg encrypted {source.name} without integrity protection; "
                               "refused")
        _commit(temp, target)
    finally:
        temp.unlink(missing_ok=True)


__all__ = [
    "PgpError",
    "decrypt_file",
    "encrypt_file",
    "fingerprint_of",
    "generate_key_pair",
]
