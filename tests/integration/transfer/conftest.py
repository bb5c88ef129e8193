"""Fixtures of the transfer job tests; the servers live in transfer_servers.py."""

from transfer_servers import job, remote_dir, sshd, system_user

__all__ = ["job", "remote_dir", "sshd", "system_user"]
