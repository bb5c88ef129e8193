"""From a file's bytes to lines of text, in bounded memory, whatever the bytes are.

The bytes are read in blocks: gzip is recognized by its magic bytes and
decompressed block by block, with a limit on the decompressed size and on the
ratio, so that a gzip bomb is refused after a few megabytes, never expanded.
Lines are cut from the blocks without ever holding more than one line limit
plus one block: a line longer than the limit is reported and skipped, however
long it is. Each block of whole lines is decoded at once (UTF-8, BOM removed);
a block that does not decode is decoded line by line, to name the lines that
are not UTF-8 and skip only them.

Every physical line becomes exactly one line of text, and a line skipped for a
problem becomes an empty line: the csv module's line numbers stay the file's
line numbers, and an empty line yields no row.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .outcome import FileProblem

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
# How much of the start of the content is looked at to tell text from binary.
SNIFF_BYTES = 8192

# What the first bytes say the file is, when it is not CSV text, and what to do.
_NOT_CSV: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xfe", "utf16", "the file is UTF-16 text: save it as UTF-8"),
    (b"\xfe\xff", "utf16", "the file is UTF-16 text: save it as UTF-8"),
    (b"PK\x03\x04", "archive", "the file is a ZIP archive or an Excel workbook: send the CSV "
                               "file itself, or compressed with gzip"),
    (b"\xd0\xcf\x11\xe0", "archive", "the file is an Excel workbook: save it as CSV (UTF-8)"),
    (b"-----BEGIN PGP", "encrypted", "the file is PGP-encrypted, and this Connection does not "
                                     "decrypt files"),
    (b"\xfd7zXZ\x00", "compressed", "the file is compressed with xz: only gzip is read"),
    (b"\x28\xb5\x2f\xfd", "compressed", "the file is compressed with zstd: only gzip is read"),
    (b"%PDF", "binary_file", "the file is a PDF document, not CSV text"),
)

LineProblem = Callable[[int, str, str], None]


@dataclass(frozen=True)
class ReadLimits:
    max_line_bytes: int = 128 << 10
    """The longest line read; a longer one is rejected without being held. The
    csv module's own limit on a value is the same, 128 KiB."""
    max_content_bytes: int = 16 << 30
    """The most bytes a gzip file may decompress to."""
    max_gzip_ratio: int = 100
    """How many times larger than its compressed bytes a gzip file may become.
    CSV compresses 5 to 20 times; a bomb, a thousand times."""
    ratio_grace_bytes: int = 16 << 20
    """The ratio is judged once this much is decompressed: a small file may
    compress very well and still be harmless."""
    block_bytes: int = 256 << 10
    """Bytes read at a time (at most max_line_bytes)."""


class _Raw:
    """The file's bytes, with the first few already read (to see the magic
    bytes of any stream, seekable or not) and a count of what was read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.head = stream.read(8)
        self._pending = self.head
        self.count = len(self.head)

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            data = self._stream.read(size)
            self.count += len(data)
            return data
        if 0 <= size < len(self._pending):
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        data, self._pending = self._pending, b""
        more = self._stream.read(-1 if size < 0 else size - len(data))
        self.count += len(more)
        return data + more

    def seek(self, offset: int) -> int:
        raise io.UnsupportedOperation("a file being checked is read once, forwards")


class Content:
    """The content of a file: its bytes, or what its gzip decompresses to."""

    def __init__(self, stream: BinaryIO, limits: ReadLimits) -> None:
        self._raw = _Raw(stream)
        self._limits = limits
        self.compressed = self._raw.head.startswith(GZIP_MAGIC)
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else None
        self.size = 0  # content bytes read so far

    def read(self, size: int) -> bytes:
        data = self._raw.read(size) if self._gzip is None else self._inflate(self._gzip, size)
        self.size += len(data)
        return data

    def _inflate(self, stream: gzip.GzipFile, size: int) -> bytes:
        try:
            data = stream.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise FileProblem("gzip_corrupt", f"the gzip file is damaged or incomplete ({err}); "
                                              "send it again") from None
        limits, total = self._limits, self.size + len(data)
        if total > limits.max_content_bytes:
            raise FileProblem("gzip_too_large", f"the gzip file decompresses to more than "
                                                f"{limits.max_content_bytes:,} bytes, the limit")
        if total > limits.ratio_grace_bytes and total > limits.max_gzip_ratio * self._raw.count:
            raise FileProblem(
                "gzip_bomb", f"the gzip file expands more than {limits.max_gzip_ratio} times "
                f"({self._raw.count:,} bytes became {total:,} and counting): it is not read "
                "further, as a decompression bomb would be")
        return data


class Lines:
    """Iterates lists of text lines, each ending with its newline (the file's
    last line may have none); `lines` is how many have been produced."""

    def __init__(self, content: Content, limits: ReadLimits, problem: LineProblem) -> None:
        self._content = content
        self._max = limits.max_line_bytes
        # A block no longer than the line limit: a line wholly inside one block
        # is then within the limit, and only the line a block starts with needs
        # measuring.
        self._block = min(limits.block_bytes, limits.max_line_bytes)
        self._problem = problem
        self.lines = 0

    def __iter__(self) -> Iterator[list[str]]:
        block = self._content.read(self._block)
        if not block:
            return
        block = _sniff(block)
        carry = b""
        skipping = False  # inside a line longer than the limit
        while block:
            if skipping:
                end = block.find(b"\n")
                if end >= 0:
                    skipping = False
                    yield self._skipped()
                    block = block[end + 1:]
            if block and not skipping:
                buf = carry + block if carry else block
                cut = buf.rfind(b"\n") + 1
                if cut == 0 and len(buf) > self._max:
                    self._too_long(buf)
                    skipping, carry = True, b""
                elif cut == 0:
                    carry = buf
                else:
                    carry = buf[cut:]
                    first = buf.find(b"\n")
                    if first > self._max:
                        self._too_long(buf)
                        yield self._skipped()
                        if first + 1 < cut:
                            yield self._decode(buf[first + 1:cut])
                    else:
                        yield self._decode(buf[:cut])
            block = self._content.read(self._block)
        if skipping:
            yield self._skipped()
        elif carry:
            yield self._decode(carry)

    def _too_long(self, buf: bytes) -> None:
        line = self.lines + 1
        message = (f"the line is longer than {self._max:,} bytes, the limit; it was not read "
                   "(is a quote left open, or is this not a CSV file?)")
        if line == 1 and b"\r" in buf[:self._max]:
            raise FileProblem("line_endings", "the lines end with a carriage return (CR) alone, "
                              "as old Mac files did: save the file with LF or CRLF line endings", 1)
        if line == 1:
            raise FileProblem("line_too_long", message, 1)
        self._problem(line, "line_too_long", message)

    def _skipped(self) -> list[str]:
        self.lines += 1
        return ["\n"]

    def _decode(self, chunk: bytes) -> list[str]:
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            return self._decode_lines(chunk)
        lines = text.splitlines(True)
        # splitlines also cuts at \r, \v, \f, \x1c-\x1e, \x85 and \u2028-9; the
        # csv module must see lines cut at \n only, which StringIO does (slower).
        if len(lines) != text.count("\n") + (not text.endswith("\n")):
            lines = io.StringIO(text).readlines()
        self.lines += len(lines)
        return lines

    def _decode_lines(self, chunk: bytes) -> list[str]:
        pieces = chunk.split(b"\n")
        last = pieces.pop()  # b"" when the chunk ends with a newline
        lines = []
        for piece in pieces:
            lines.append(self._decode_line(piece, "\n"))
        if last:
            lines.append(self._decode_line(last, ""))
        return lines

    def _decode_line(self, piece: bytes, end: str) -> str:
        self.lines += 1
        try:
            return piece.decode("utf-8") + end
        except UnicodeDecodeError as err:
            message = (f"the line is not UTF-8 text (byte {piece[err.start]:#04x} at position "
                       f"{err.start + 1}): save the file as UTF-8")
            if self.lines == 1:
                raise FileProblem("invalid_utf8", message, 1) from None
            self._problem(self.lines, "invalid_utf8", message)
            return "\n"


def _sniff(block: bytes) -> bytes:
    """The first block without its BOM, or a FileProblem saying what the file is."""
    for magic, code, message in _NOT_CSV:
        if block.startswith(magic):
            raise FileProblem(code, message)
    if block.startswith(UTF8_BOM):
        block = block[len(UTF8_BOM):]
    if b"\x00" in block[:SNIFF_BYTES]:
        raise FileProblem("binary_file", "the file is binary data (it holds NUL bytes), "
                                         "not CSV text")
    return block
