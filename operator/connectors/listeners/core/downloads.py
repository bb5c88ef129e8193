"""A partner downloaded a whole file (Outbound Pull): the one ending that SFTP
and FTP share. The download is reported like a transfer (status.lastTransfer
and a FilesSent event), and with deleteAfterDownload the file goes, unless the
platform has put a newer file under the same name meanwhile."""

from __future__ import annotations

import logging
from pathlib import Path

from connectors.api.accounts import Account
from connectors.landing.area import remove_if_unchanged
from connectors.listeners.core.report import NO_PEER, Peer, TransferReporter, report_sent

log = logging.getLogger(__name__)


def finish_download(reporter: TransferReporter, account: Account, protocol: str,
                    path: Path, size: int, inode: tuple[int, int],
                    peer: Peer = NO_PEER) -> None:
    """`inode` is (device, inode) of the file as it was opened."""
    report_sent(reporter, account, protocol, path.name, size, peer)
    if not account.delete_after_download:
        return
    try:
        if remove_if_unchanged(path, inode):
            log.info("deleted downloaded connection=%s name=%s", account.connection, path.name)
    except OSError as err:
        log.warning("could not delete downloaded %r: %s", path.name,
                    err.strerror or type(err).__name__)
