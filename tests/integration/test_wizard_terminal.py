"""`connectors new` in a real terminal: tmux runs it, send-keys types the answers and
capture-pane reads the screen, as a person would see it. The YAML it writes must
pass `connectors validate`; with --cluster --apply, the objects it applies must be
in the namespace, and step 4 offers only the namespace's Credentials that fit.

tmux comes from hack/install-deps.sh.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.conftest import Cluster
from tests.support.wait import eventually

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk8s2rv++mP2HE7sJCttP3dpLMeUdqJy3KAu1b2tSyP"
PARTNER_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0j54elL+x+D3NK2WR3xXx "
               "partner@northwind")


class Tmux:
    """One program in a detached tmux session on a server of its own."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.socket = f"connectors-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        tmux = shutil.which("tmux")
        assert tmux, "tmux is missing: hack/install-deps.sh installs it"
        self.tmux = tmux
        # The exit status goes to a file, and the screen stays readable once the
        # program ends (remain-on-exit, set in the same tmux command as the session).
        self.status = cwd / f"{self.socket}.status"
        command = " ".join(shlex.quote(a) for a in argv) + f"; echo $? > {self.status}"
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "wizard", "-x", "200", "-y",
                 "60", "-c", str(cwd), command, ";", "set-option", "-t", "wizard",
                 "remain-on-exit", "on")

    def run(self, *args: str) -> str:
        result = subprocess.run([self.tmux, "-L", self.socket, *args], env=self.env,
                                capture_output=True, text=True, check=True, timeout=30)
        return result.stdout

    def screen(self) -> str:
        """What the terminal shows, with its scrollback."""
        return self.run("capture-pane", "-p", "-J", "-t", "wizard", "-S", "-500")

    def wait_for(self, text: str, after: int = 0) -> str:
        """The screen once `text` shows up past character `after`; its new part."""
        def shown() -> str | None:
            screen = self.screen()
            return screen[after:] if text in screen[after:] else None
        return eventually(shown, 30, f"{text!r} on the screen:\n{self.screen()}")

    def answer(self, text: str, expect: str) -> str:
        """Types `text` and Enter, then waits for `expect`; the screen from the typing on."""
        mark = len(self.screen().rstrip())
        self.run("send-keys", "-t", "wizard", "-l", text)
        self.run("send-keys", "-t", "wizard", "Enter")
        return self.wait_for(expect, mark)

    def exit_status(self) -> int:
        def written() -> str | None:
            return self.status.read_text().strip() if self.status.exists() else None
        return int(eventually(written, 30, f"the wizard to end:\n{self.screen()}"))

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], env=self.env,
                       capture_output=True, check=False, timeout=30)


def wizard_env(kubeconfig: str | None = None) -> dict[str, str]:
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (str(repo / "operator"), str(repo),
                                       os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TERM": "xterm"}
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return env


def menu(screen: str, title: str) -> list[str]:
    """The choices of the last menu titled `title` on the screen."""
    lines = screen.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith(f"{title}:"))
    found = []
    for line in lines[start + 1:]:
        if not line.startswith("  ") or ")" not in line:
            break
        found.append(line.strip().split(") ", 1)[1].removesuffix(" (current)"))
    return found


def test_an_inbound_pull_written_to_a_file_validates(tmp_path: Path) -> None:
    out = tmp_path / "shandalear.yaml"
    term = Tmux([sys.executable, "-m", "connectors", "new", "--output", str(out)],
                wizard_env(), tmp_path)
    try:
        term.wait_for("Connection name: ")
        term.answer("ShandaLear", "must be lower-case letters")   # refused, in words
        screen = term.answer("shandalear-audiences", "Choose 1-2: ")
        assert menu(screen, "Direction") == ["Inbound: the partner gives data to the platform",
                                             "Outbound: the platform gives data to the partner"]
        screen = term.answer("1", "Choose 1-6: ")
        # Inbound: every data type but Reports, which only flow to the partner.
        assert menu(screen, "Data type") == ["Conversions", "Clicks", "ProductCatalog",
                                             "Audiences", "Identities",
                                             "CardLinkedTransactions"]
        screen = term.answer("4", "Choose 1-3: ")
        assert menu(screen, "Method") == ["SFTP", "FTP", "Email"]
        term.answer("1", "File name pattern: ")
        screen = term.answer("audiences/*.csv", "File name pattern: ")
        assert "filenamePattern is a file name, not a path" in screen
        screen = term.answer("*.csv", "Choose 1-2: ")
        assert menu(screen, "Methodology") == [
            "Push: the partner connects to the platform's listener",
            "Pull: the platform connects to the partner's server, on a schedule"]
        term.answer("2", "Partner's server: ")
        term.answer("sftp.shandalear.example", "Port: ")
        term.answer("", "Folder on the partner's server: ")
        screen = term.answer("home/audiences", "Folder on the partner's server: ")
        assert "remote.folder must be an absolute path" in screen
        term.answer("/home/ShandaLear/Audiences", "> ")
        term.answer(f"sftp.shandalear.example {HOST_KEY}", "> ")
        term.answer("", "Schedule: ")
        screen = term.answer("61 * * * *", "Schedule: ")
        assert "is not a valid cron expression" in screen
        screen = term.answer("0 * * * *", "Choose 1-2: ")
        # The platform logs in to the partner: a key pair it generates, or a password;
        # never a partner's public key.
        assert menu(screen, "Credential") == [
            "new: Key pair (generated; the partner authorizes its public half)",
            "new: Password (generated)"]
        term.answer("1", "Credential name: ")
        term.answer("shandalear-pull", "Username: ")
        screen = term.answer("platform", "Choose 1-6: ")
        assert "Step 5 of 5: review" in screen
        for line in ("Direction:         Inbound", "Host keys:         " + HOST_KEY,
                     "Schedule:          0 * * * *",
                     "Credential:        shandalear-pull (new: Key pair, generated by the "
                     "operator)"):
            assert line in screen, screen
        term.answer("1", "wrote Credential/shandalear-pull, Connection/shandalear-audiences")
        assert term.exit_status() == 0
    finally:
        term.close()
    documents = list(yaml.safe_load_all(out.read_text()))
    assert documents[0] == {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
                            "metadata": {"name": "shandalear-pull"},
                            "spec": {"type": "PublicKey", "username": "platform"}}
    assert documents[1]["spec"] == {
        "direction": "Inbound", "dataType": "Audiences", "method": "SFTP", "methodology": "Pull",
        "credentialRef": {"name": "shandalear-pull"}, "filenamePattern": "*.csv",
        "schedule": "0 * * * *",
        "remote": {"host": "sftp.shandalear.example", "folder": "/home/ShandaLear/Audiences",
                   "hostKeys": [HOST_KEY]}}
    validate = subprocess.run([sys.executable, "-m", "connectors", "validate", str(out)],
                              env=wizard_env(), capture_output=True, text=True, check=False)
    assert (validate.returncode, validate.stdout) == (0, "1 file, 2 resources: valid\n"), \
        validate.stdout + validate.stderr


def test_outbound_offers_reports_and_a_partner_key_is_pasted(tmp_path: Path) -> None:
    out = tmp_path / "northwind.yaml"
    term = Tmux([sys.executable, "-m", "connectors", "new", "--output", str(out), "-n",
                 "partners"], wizard_env(), tmp_path)
    try:
        term.wait_for("Connection name: ")
        term.answer("northwind-reports", "Choose 1-2: ")
        screen = term.answer("2", "Choose 1-7: ")
        assert menu(screen, "Data type")[-1] == "Reports"
        term.answer("7", "Choose 1-3: ")
        term.answer("1", "File name pattern: ")
        term.answer("northwind_*.csv.gz", "Choose 1-2: ")
        term.answer("2", "Folder on the platform's listener: ")      # Pull: the partner's
        screen = term.answer("", "Choose 1-2: ")
        assert menu(screen, "Credential") == [
            "new: Public Key (paste the partner's public key)", "new: Password (generated)"]
        term.answer("1", "Credential name: ")
        term.answer("northwind-key", "Username: ")
        term.answer("northwind", "> ")
        term.answer("ssh-dss AAAAB3NzaC1kc3MAAACBAP1", "> ")
        screen = term.answer("", "> ")
        assert "publicKey must hold OpenSSH public keys" in screen
        term.answer(PARTNER_KEY, "> ")
        screen = term.answer("", "Choose 1-6: ")
        assert "Namespace:" in screen
        assert "Partner keys:" in screen
        term.answer("1", "wrote ")
        assert term.exit_status() == 0
    finally:
        term.close()
    documents = list(yaml.safe_load_all(out.read_text()))
    assert documents[0]["metadata"] == {"name": "northwind-key", "namespace": "partners"}
    assert documents[0]["spec"]["publicKey"] == PARTNER_KEY + "\n"
    assert documents[1]["spec"]["dataType"] == "Reports"
    validate = subprocess.run([sys.executable, "-m", "connectors", "validate", str(out)],
                              env=wizard_env(), capture_output=True, text=True, check=False)
    assert validate.returncode == 0, validate.stdout + validate.stderr


EXISTING = f"""
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {{name: initrode-login}}
spec: {{type: Password, username: initrode}}
---
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {{name: northwind-key}}
spec:
  type: PublicKey
  publicKey: "{PARTNER_KEY}"
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {{name: taken}}
spec: {{direction: Inbound, dataType: Clicks, method: SFTP, methodology: Push,
       credentialRef: {{name: northwind-key}}}}
"""


def test_with_the_cluster_it_offers_what_fits_and_applies(crds: Cluster, namespace: str,
                                                          tmp_path: Path) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=EXISTING)
    term = Tmux([sys.executable, "-m", "connectors", "new", "--apply", "-n", namespace],
                wizard_env(crds.kubeconfig), tmp_path)
    try:
        term.wait_for("Connection name: ")
        screen = term.answer("taken", "Connection name: ")
        assert f"a Connection named taken exists already in namespace {namespace}" in screen
        term.answer("initrode-clicks", "Choose 1-2: ")
        term.answer("1", "Choose 1-6: ")
        term.answer("2", "Choose 1-3: ")
        term.answer("2", "File name pattern: ")                       # FTP
        term.answer("clicks_*.csv", "Choose 1-2: ")
        term.answer("1", "Folder on the platform's listener: ")      # Push: the listener
        screen = term.answer("", "Choose 1-2: ")
        # FTP logs in with a password: the partner's key in northwind-key cannot serve.
        assert menu(screen, "Credential") == ["existing: initrode-login (Password)",
                                              "new: Password (generated)"]
        screen = term.answer("1", "Choose 1-6: ")
        assert f"1) Finish: apply it to namespace {namespace}" in screen
        term.answer("1", "applied Connection/initrode-clicks")
        assert term.exit_status() == 0
    finally:
        term.close()
    applied = json.loads(crds.kubectl("get", "connection", "initrode-clicks", "-n", namespace,
                                      "-o", "json", "--show-managed-fields").stdout)
    # The API server adds the schema's defaults (suspend: false, ...): what was given is kept.
    given = {k: v for k, v in applied["spec"].items() if v is not False}
    assert given == {"direction": "Inbound", "dataType": "Clicks", "method": "FTP",
                               "methodology": "Push", "credentialRef": {"name": "initrode-login"},
                               "filenamePattern": "clicks_*.csv"}
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert "connectors-new" in managers

