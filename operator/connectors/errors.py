"""Words for failures, shared by the transfer jobs and the listeners.

An exception object is always truthy, and `str()` of many exceptions is empty
(`EOFError()`, `socket.timeout()`, paramiko's `SSHException()`), so a message
built as f"...: {exc or type(exc).__name__}" can end with an empty cause.
`describe` never returns an empty string.
"""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """The exception's own text, or its class name when it has none."""
    text = str(exc).strip()
    return text or type(exc).__name__


__all__ = ["describe"]
