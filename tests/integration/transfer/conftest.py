"""Fixtures of the transfer job tests; the servers live in transfer_servers.py."""

from tests.integration.transfer.transfer_servers import (
    certificate,
    dovecot,
    job,
    remote_dir,
    sshd,
    sshd_subsystem,
    system_user,
    vsftpd,
)

__all__ = [
    "certificate",
    "dovecot",
    "job",
    "remote_dir",
    "sshd",
    "sshd_subsystem",
    "system_user",
    "vsftpd",
]
