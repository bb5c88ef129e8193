"""A webhook sink: the file POSTed as a binary-mode CloudEvent (CloudEvents 1.0,
HTTP protocol binding): the event's attributes are ce-* headers, its data is
the body, byte for byte the accepted file, streamed from the volume.

    ce-specversion: 1.0
    ce-id: <trace id>                 (the receiver's idempotency key)
    ce-source: connectors/<namespace>/<connection>
    ce-type: dev.connectors.submission.accepted
    ce-time: <when it was accepted>
    ce-subject: <file name>
    ce-datatype, ce-sha256, ce-rowsaccepted, ce-rowsrejected   (extensions)
    Content-Type: text/csv, or application/gzip
    X-Connectors-Signature: sha256=<hex HMAC-SHA256 of the body>   (with a key)

2xx is delivered; 408, 429 and 5xx, a refused connection or a timeout are
worth another try; any other answer is a refusal for good, in words that
name the status.
"""

from __future__ import annotations

import datetime
import email.utils
import errno
import time
from http import HTTPStatus
from urllib.parse import unquote

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Url, make_headers, parse_url

from .delivery import Delivery, FileChanged, Outcome, opened

EVENT_TYPE = "dev.connectors.submission.accepted"
SIGNATURE_HEADER = "X-Connectors-Signature"
DEFAULT_TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
"""connect: to open the connection, and for each write of the body to make
progress; read: for the answer once the body is sent."""
RETRY_STATUSES = frozenset({408, 429})
UNREACHABLE_STATUSES = frozenset({429, 502, 503, 504})
"""The receiver as a whole is busy or down, not this file."""

# One pool per process, shared by threads; connections are kept for the next file.
_POOL = urllib3.PoolManager(num_pools=16, maxsize=4, blocksize=1 << 16)


def event_headers(delivery: Delivery, content_type: str) -> dict[str, str]:
    """The CloudEvent's attributes as binary-mode headers."""
    attributes = {
        "specversion": "1.0",
        "id": delivery.trace_id,
        "source": f"connectors/{delivery.namespace}/{delivery.connection}",
        "type": EVENT_TYPE,
        "time": delivery.checked_at,
        "subject": delivery.name,
        # Extensions: names are lowercase letters and digits only.
        "datatype": delivery.data_type,
        "sha256": delivery.sha256,
        "rowsaccepted": str(delivery.rows_accepted),
        "rowsrejected": str(delivery.rows_rejected),
    }
    headers = {f"ce-{name}": header_value(value) for name, value in attributes.items()}
    headers["Content-Type"] = content_type
    return headers


def header_value(value: str) -> str:
    """Percent-encoded as the HTTP binding says: UTF-8, and every byte outside
    printable ASCII, space, '"' and '%' as %XX (a file name may be anything)."""
    return "".join(chr(byte) if 0x21 <= byte <= 0x7E and byte not in (0x22, 0x25)
                   else f"%{byte:02X}" for byte in value.encode("utf-8"))


def where(url: str) -> str:
    """The receiver, for words: its host and port only. The path, the query
    and a user:password may hold tokens, and words are logged."""
    try:
        parsed = parse_url(url)
    except LocationValueError:
        return "an unparsable URL"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.host}{port}"


def post(url: str, delivery: Delivery, *, hmac_key: bytes | None = None,
         timeout: urllib3.Timeout = DEFAULT_TIMEOUT,
         pool: urllib3.PoolManager | None = None) -> Outcome:
    """One attempt at delivering the file to the webhook at `url`."""
    at = f"the webhook at {where(url)}"
    try:
        target, authorization = _target(url)
    except LocationValueError:
        return Outcome.refused(f"{at}: the url cannot be parsed")
    try:
        with opened(delivery, hmac_key) as (body, content_type, signature):
            headers = event_headers(delivery, content_type)
            headers["Content-Length"] = str(delivery.size)
            if signature is not None:
                headers[SIGNATURE_HEADER] = f"sha256={signature}"
            if authorization is not None:
                headers["Authorization"] = authorization
            # No retries here (the store schedules them, with backoff) and no
            # redirects (the body is a stream, sent once).
            response = (pool or _POOL).request(
                "POST", target, body=body, headers=headers, timeout=timeout, retries=False,
                redirect=False, preload_content=False)
            try:
                status = response.status
                snippet = _snippet(response)
                retry_after = _retry_after(response.headers.get("Retry-After"))
                location = response.headers.get("Location")
            finally:
                _finish(response)
    except FileNotFoundError:
        return Outcome.refused(f"{delivery.name} is no longer on the volume: not sent to "
                               f"{where(url)}")
    except FileChanged as err:
        return Outcome.refused(f"{err}: not sent to {where(url)}")
    except (ConnectTimeoutError, NewConnectionError) as err:
        return Outcome.retry(f"{at} could not be reached: {_reason(err)}", unreachable=True)
    except ReadTimeoutError:
        return Outcome.retry(f"{at} did not answer within {timeout.read_timeout:g} s",
                             unreachable=True)
    except SSLError as err:
        return Outcome.retry(f"{at}: TLS failed ({_reason(err)}); is its certificate valid "
                             "and trusted?", unreachable=True)
    except HTTPError as err:
        return Outcome.retry(f"{at}: the request failed ({_reason(err)})", unreachable=True)
    except OSError as err:
        return Outcome.retry(f"{delivery.name} could not be read: {err.strerror or err}")
    return answer(at, status, snippet, retry_after, location)


def answer(at: str, status: int, snippet: str, retry_after: float | None = None,
           location: str | None = None) -> Outcome:
    """An HTTP status, in words."""
    said = f"{at} answered {status} {_phrase(status)}".rstrip()
    if snippet:
        said += f": {snippet}"
    if 200 <= status < 300:
        return Outcome.done(f"{at} answered {status} {_phrase(status)}".rstrip())
    if status in RETRY_STATUSES or status >= 500:
        return Outcome.retry(said, retry_after=retry_after,
                             unreachable=status in UNREACHABLE_STATUSES)
    if 300 <= status < 400:
        to = f" to {where(location)}" if location else ""
        return Outcome.refused(f"{said} (a redirect{to}): a delivery is not redirected; set "
                               "the webhook's url to the address that takes the POST")
    hint = {
        401: "the receiver wants credentials, or the X-Connectors-Signature did not verify: "
             "check the secretRef's hmac-key against the receiver's",
        403: "the receiver refuses this sender: check the secretRef's hmac-key and the "
             "receiver's permissions",
        404: "nothing takes a POST at that url: check the webhook's url",
        413: "the file is larger than the receiver takes",
        415: "the receiver does not take this content type",
    }.get(status, "the receiver refuses this file, so it is not sent again")
    return Outcome.refused(f"{said}; {hint}")


def _target(url: str) -> tuple[str, str | None]:
    """The URL to POST to without a user:password, and the Basic authorization
    header that user:password asks for."""
    parsed = parse_url(url)
    if not parsed.host or parsed.scheme not in ("http", "https"):
        raise LocationValueError(url)
    if parsed.auth is None:
        return parsed.url, None
    bare = Url(scheme=parsed.scheme, host=parsed.host, port=parsed.port, path=parsed.path,
               query=parsed.query)
    header = make_headers(basic_auth=unquote(parsed.auth))["authorization"]
    return bare.url, header


def _snippet(response: urllib3.BaseHTTPResponse, limit: int = 200) -> str:
    """The start of the receiver's answer, printable, on one line."""
    try:
        raw = response.read(limit + 1, decode_content=True)
    except (HTTPError, OSError):
        return ""
    text = raw.decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(raw) <= limit else text[:limit] + "…"


def _finish(response: urllib3.BaseHTTPResponse) -> None:
    """A short answer is read to its end, so the connection serves the next
    file; a long one closes it."""
    remaining = response.length_remaining
    if remaining is not None and remaining <= 1 << 16:
        response.drain_conn()
    else:
        response.close()
    response.release_conn()


def _retry_after(value: str | None) -> float | None:
    """Retry-After: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, moment.timestamp() - time.time())


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _reason(err: BaseException) -> str:
    """An exception's cause in a few words, without the URL it may carry."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return (seen.strerror or errno.errorcode.get(seen.errno, str(seen.errno))).lower()
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, SSLError) and err.args:
        text = str(err.args[-1])
        return text[:200]
    return type(err).__name__
