"""Fixtures of the chaos tests: the real OpenSSH sshd of the transfer job
tests (transfer_servers.py) for the job side; the listener side starts its
own listeners (chaos_support.py)."""

from tests.integration.transfer.transfer_servers import remote_dir, sshd, system_user

__all__ = ["remote_dir", "sshd", "system_user"]
