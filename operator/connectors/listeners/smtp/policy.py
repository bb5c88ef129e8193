"""What the SMTP listener accepts, before a message is read: recipients,
senders and rates; and the words of its replies.

Pure and thread-safe, so that they can be tested without a server:
- a recipient is `<connection>@<domain>` of a Connection in the account table
  that is not suspended and may upload; anything else is refused at RCPT with
  one answer, so that a stranger learns nothing about which names exist;
- a Connection may name allowed senders: addresses, or whole domains written
  `example.com` or `@example.com`, compared without regard to case (mail
  systems treat addresses so, although RFC 5321 lets a local part be
  case-sensitive);
- rates are counted per key over a sliding minute with an injected clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from connectors.api.accounts import Account
from connectors.api.senders import sender_allowed
from connectors.listeners.core.accounts_file import AccountsFile

# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its code and CRLF.
MAX_REPLY = 500

NO_SUCH_RECIPIENT = "550 5.1.1 No such recipient here"
RELAY_DENIED = "550 5.7.1 Relaying denied: this server only takes mail for its own domain"
SENDER_REFUSED = "550 5.7.1 The sender is not allowed to send to this recipient"
RATE_LIMITED = "450 4.7.1 Too many messages from this sender; try again later"
RECIPIENT_CHANGED = "451 4.3.0 A recipient changed during the transaction; try again later"
NO_AUTH_HERE = ("502 5.5.1 No login on this port: mail servers deliver here without one; "
                "partners who log in use the submission port")
OWN_ADDRESS_ONLY = "550 5.7.1 This login may only send to its own Connections' addresses"


def reply_text(text: str) -> str:
    """`text` fit for an SMTP reply line: printable ASCII (anything else, such
    as a CR LF in a sender's file name, escaped), bounded."""
    safe = "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text)
    return safe[:MAX_REPLY]


def connection_of(address: str, domain: str) -> str | None:
    """The Connection name an address is for: its local part when its domain
    is the listener's (any case); None for another domain."""
    local, at, host = address.rpartition("@")
    if not at or not local or host.lower() != domain.lower():
        return None
    return local


def recipient_refusal(accounts: AccountsFile, domain: str, address: str,
                      sender: str) -> tuple[Account | None, str | None]:
    """The account `address` names (None when it names no Connection that
    receives mail) and the reply that refuses it (None when it is taken): at
    RCPT on the mail exchanger port, and again at the end of DATA (the table
    may have changed in between)."""
    connection = connection_of(address, domain)
    if connection is None:
        return None, RELAY_DENIED
    account = accounts.recipient(connection)
    # A Connection that receives no files has no inbox: the same answer as for
    # a name that does not exist, so nothing tells the two apart.
    if account is None or "upload" not in account.permissions:
        return None, NO_SUCH_RECIPIENT
    if not sender_allowed(sender, account.allowed_senders):
        return account, SENDER_REFUSED
    return account, None


class SlidingWindow:
    """At most `limit` events per key in any `window` seconds (0: no limit).

    Each key keeps the times of its last `limit` events, so memory is bounded
    per key; keys whose events are all older than the window are swept when
    the table has grown, so senders seen once do not accumulate forever.
    """

    def __init__(self, limit: int, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._sweep_above = 1024

    def has_room(self, key: str, now: float) -> bool:
        if self.limit <= 0:
            return True
        events = self._events.get(key)
        if events is None:
            return True
        while events and events[0] <= now - self.window:
            events.popleft()
        return len(events) < self.limit

    def record(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        self._events.setdefault(key, deque(maxlen=self.limit)).append(now)
        if len(self._events) > self._sweep_above:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        horizon = now - self.window
        self._events = {k: v for k, v in self._events.items() if v and v[-1] > horizon}
        self._sweep_above = max(1024, 2 * len(self._events))

    def keys(self) -> int:
        return len(self._events)


class MailRate:
    """Messages per minute per envelope sender and per client address, on the
    mail exchanger port. A message is counted when its MAIL command is taken,
    against both keys or neither: a refused attempt costs nothing, so a sender
    that retries later (as 450 asks) is not kept out by its own retries."""

    def __init__(self, per_sender: int, per_client: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.senders = SlidingWindow(per_sender, clock=clock)
        self.clients = SlidingWindow(per_client, clock=clock)
        self.clock = clock
        # Two event loops (the two ports) may call at once.
        self._lock = threading.Lock()

    def admit(self, sender: str, client: str) -> bool:
        sender_key = sender.strip().lower()
        with self._lock:
            now = self.clock()
            if not (self.senders.has_room(sender_key, now)
                    and self.clients.has_room(client, now)):
                return False
            self.senders.record(sender_key, now)
            self.clients.record(client, now)
            return True
