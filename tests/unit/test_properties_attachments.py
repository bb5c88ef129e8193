"""Property-based tests of the attachment rules (issue 11): whatever names a
sender gives its attachments, in whatever header form, a message is either
ignored whole or its accepted attachments all have safe, unique names that
match the pattern and come from the message, with their own content."""

from __future__ import annotations

import base64
import email.policy
import unicodedata
import urllib.parse
from email.message import EmailMessage, Message
from email.parser import BytesParser

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from connectors.landing.attachments import MAX_PARTS, Verdict, select_attachments
from connectors.landing.names import is_hidden, is_reserved, matches_pattern, name_refusal

PROPERTIES = settings(derandomize=True, deadline=None, max_examples=150, database=None)

PATTERNS = st.sampled_from([None, "*", "*.csv", "report_*.csv", "?.csv", "*.CSV"])
NASTY = "/\\.\x00\n\r\t\x7f *?'\";=%é中😀\u200b\u202e\u0301\ufeff"

# Names that may well be accepted, behind folders, blanks and decompositions.
LIKELY_NAMES = st.builds(
    lambda folder, middle, blank: f"{folder}{blank}report_{middle}.csv{blank}",
    st.sampled_from(["", "../", "..\\", "C:\\tmp\\", "a/b/", "/", "\\\\server\\"]),
    st.text(alphabet="ab1 'e\u0301é中😀;=%\"", max_size=8),
    st.sampled_from(["", " ", "\t", "\u00a0"]),
)
RAW_NAMES: st.SearchStrategy[str] = st.one_of(
    LIKELY_NAMES,
    LIKELY_NAMES,
    st.text(max_size=30),
    st.text(alphabet=NASTY + "ab_", max_size=20),
    st.lists(st.sampled_from(["report_", "receipt_", "result_", "..", ".", "/", "\\", "C:",
                              "x", ".csv", " ", "e\u0301", "é", "\x00"]),
             max_size=6).map("".join),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.builds(lambda c, n: "report_" + c * n + ".csv",
              st.sampled_from(["a", "é", "中", "😀"]), st.integers(55, 240)),
)


def terminal(raw: str) -> str:
    """RFC 2183: a file name stands for its last component (either slash)."""
    return unicodedata.normalize("NFC", raw).replace("\\", "/").split("/")[-1].strip()


def attachment_parts(message: Message) -> list[Message]:
    return [part for part in message.walk() if not part.is_multipart()
            and (part.get_content_disposition() == "attachment"
                 or part.get_filename() is not None)]


def plainly_a_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(
        unicodedata.category(c).startswith("C") for c in name)


def check(message: Message, pattern: str | None) -> Verdict:
    """The properties every verdict holds; returns it for more checks."""
    verdict = select_attachments(message, pattern)
    parts = attachment_parts(message)
    event("accepted" if verdict.is_accepted else "ignored")
    if verdict.reason is not None:  # ignored whole
        assert verdict.accepted == ()
        return verdict
    assert verdict.accepted, "an accepted message lands something"
    names = [a.name for a in verdict.accepted]
    assert len(set(names)) == len(names), names
    sources = {terminal(raw): part for part in parts
               if (raw := part.get_filename()) is not None}
    for attachment in verdict.accepted:
        name = attachment.name
        assert name_refusal(name) is None, name
        assert "/" not in name
        assert "\\" not in name
        assert "\x00" not in name
        assert not is_hidden(name)
        assert not is_reserved(name)
        assert matches_pattern(name, pattern)
        assert plainly_a_name(name), ascii(name)
        assert name in sources, ascii(name)  # it came from one of the attachments
        assert attachment.payload == sources[name].get_payload(decode=True)
    for part in parts:
        raw = part.get_filename()
        name = terminal(raw) if raw is not None else ""
        # Every attachment of an accepted message is plainly named, and it
        # matches the pattern or is reserved (left out).
        assert plainly_a_name(name), ascii(raw)
        assert is_reserved(name) or (matches_pattern(name, pattern) and name in names), (
            ascii(raw), pattern)
    return verdict


def expected_acceptance(message: Message, pattern: str | None) -> bool:
    """The product rules, said plainly: every attachment is plainly named and
    fits with its receipt; every one that is not reserved matches the pattern;
    at least one is left; no two share a name."""
    if sum(1 for _ in message.walk()) > MAX_PARTS:
        return False
    landed: list[str] = []
    for part in attachment_parts(message):
        raw = part.get_filename()
        name = terminal(raw) if raw is not None else ""
        if not plainly_a_name(name):
            return False
        if is_reserved(name):
            continue
        if name_refusal(name) is not None or not matches_pattern(name, pattern):
            return False
        landed.append(name)
    return bool(landed) and len(set(landed)) == len(landed)


def buildable(name: str) -> bool:
    """Whether EmailMessage.add_attachment takes the name (it refuses line
    breaks and lone surrogates; raw headers carry those, see below)."""
    try:
        built([(name, b"")])
    except (ValueError, UnicodeError):
        return False
    return True


def built(attachments: list[tuple[str, bytes]]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "partner@example.com"
    message["To"] = "acme@partners.example"
    message["Subject"] = "files"
    message.set_content("see attached\n")
    for name, payload in attachments:
        message.add_attachment(payload, maintype="application", subtype="octet-stream",
                               filename=name)
    return message


def parsed(content: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(content)
    assert isinstance(message, EmailMessage)
    return message


@PROPERTIES
@given(attachments=st.lists(st.tuples(RAW_NAMES.filter(buildable), st.binary(max_size=64)),
                            max_size=5),
       pattern=PATTERNS)
@example(attachments=[("report_1.csv", b"a"), ("../report_1.csv", b"b")], pattern=None)
@example(attachments=[("report_1.csv", b"a"), ("other.txt", b"b")], pattern="report_*.csv")
@example(attachments=[("report_1.csv", b"a"), ("receipt_x.txt", b"b")], pattern="*.csv")
@example(attachments=[("C:\\temp\\..\\report_1.csv", b"a")], pattern="report_*.csv")
@example(attachments=[("e\u0301.csv", b"a"), ("\u00e9.csv", b"b")], pattern=None)
@example(attachments=[("report_\u202ecsv.exe", b"a")], pattern=None)
@example(attachments=[(" .hidden.csv", b"a")], pattern=None)
@example(attachments=[("report_" + "😀" * 59 + ".csv", b"a")], pattern=None)
def test_built_messages_are_accepted_safely_or_ignored_whole(
        attachments: list[tuple[str, bytes]], pattern: str | None) -> None:
    message = built(attachments)
    verdict = check(message, pattern)
    assert verdict.is_accepted is expected_acceptance(message, pattern), verdict.reason
    try:
        content = message.as_bytes()
    except (ValueError, UnicodeError):
        return  # a name no mail client could send (a line break, a lone surrogate)
    received = parsed(content)
    verdict = check(received, pattern)
    assert verdict.is_accepted is expected_acceptance(received, pattern), verdict.reason


def header_value(form: str, value: bytes) -> bytes:
    """A Content-Disposition filename parameter in one of the forms senders use."""
    if form == "quoted":
        return b'filename="' + value.replace(b"\r", b"").replace(b"\n", b"") + b'"'
    if form == "token":
        return b"filename=" + value.replace(b"\r", b"").replace(b"\n", b"")
    if form == "rfc2231":
        return b"filename*=utf-8''" + urllib.parse.quote_from_bytes(value, safe="").encode()
    if form == "rfc2231-latin1":
        return b"filename*=iso-8859-1'en'" + urllib.parse.quote_from_bytes(value, safe="").encode()
    if form == "continued":
        half = len(value) // 2
        first = urllib.parse.quote_from_bytes(value[:half], safe="").encode()
        return (b"filename*0*=utf-8''" + first
                + b"; filename*1*=" + urllib.parse.quote_from_bytes(value[half:], safe="").encode())
    assert form == "encoded-word"
    return b'filename="=?utf-8?b?' + base64.b64encode(value) + b'?="'


RAW_VALUES = st.one_of(
    RAW_NAMES.map(lambda s: s.encode("utf-8", "surrogateescape")),
    st.binary(max_size=40),
    st.sampled_from([b"../../etc/passwd", b"..", b".", b"", b"report_1.csv\x00.exe",
                     b"report_1.csv%00", b"\xed\xa0\x80.csv", b"\xc3\xa9.csv", b"\xff.csv",
                     b"report_1.csv\r\nX-Injected: 1", b"receipt_report_1.csv.txt"]),
)
FORMS = st.sampled_from(["quoted", "token", "rfc2231", "rfc2231-latin1", "continued",
                         "encoded-word"])


def raw_message(parts: list[tuple[str, bytes, bool, bytes]]) -> bytes:
    lines = [b"From: partner@example.com", b"To: acme@partners.example", b"Subject: files",
             b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="=BOUNDARY="',
             b"", b"--=BOUNDARY=", b"Content-Type: text/plain", b"", b"see attached"]
    for form, value, in_content_type, payload in parts:
        lines.append(b"--=BOUNDARY=")
        parameter = header_value(form, value)
        if in_content_type:  # the older `name` parameter of Content-Type
            lines.append(b"Content-Type: application/octet-stream; "
                         + parameter.replace(b"filename", b"name", 1))
            lines.append(b"Content-Disposition: attachment")
        else:
            lines.append(b"Content-Type: application/octet-stream")
            lines.append(b"Content-Disposition: attachment; " + parameter)
        lines += [b"Content-Transfer-Encoding: base64", b"", base64.b64encode(payload)]
    lines.append(b"--=BOUNDARY=--")
    return b"\r\n".join(lines) + b"\r\n"


@PROPERTIES
@given(parts=st.lists(st.tuples(FORMS, RAW_VALUES, st.booleans(), st.binary(max_size=32)),
                      min_size=1, max_size=4),
       pattern=PATTERNS)
@example(parts=[("rfc2231", b"../../report_1.csv", False, b"a")], pattern=None)
@example(parts=[("encoded-word", b"..\\report_1.csv", True, b"a")], pattern=None)
@example(parts=[("rfc2231", b"report_1.csv\x00", False, b"a")], pattern=None)
@example(parts=[("continued", b"report_1.csv", False, b"a"),
                ("quoted", b"report_1.csv", False, b"b")], pattern=None)
@example(parts=[("rfc2231", b"\xed\xa0\x80.csv", False, b"a")], pattern=None)
@example(parts=[("quoted", b"\xff.csv", False, b"a")], pattern=None)
def test_hostile_raw_headers_are_accepted_safely_or_ignored_whole(
        parts: list[tuple[str, bytes, bool, bytes]], pattern: str | None) -> None:
    message = parsed(raw_message(parts))
    verdict = check(message, pattern)
    assert verdict.is_accepted is expected_acceptance(message, pattern), verdict.reason


@PROPERTIES
@given(good=st.lists(st.integers(1, 9).map(lambda n: f"report_{n}.csv"), min_size=1,
                     max_size=3, unique=True),
       bad=RAW_NAMES.filter(buildable), position=st.integers(0, 3))
def test_one_attachment_off_pattern_ignores_the_whole_email(
        good: list[str], bad: str, position: int) -> None:
    name = terminal(bad)
    if matches_pattern(name, "report_*.csv") or is_reserved(name):
        return
    names = [*good]
    names.insert(min(position, len(names)), bad)
    verdict = select_attachments(built([(n, b"x") for n in names]), "report_*.csv")
    assert verdict.reason is not None
    assert verdict.accepted == ()
