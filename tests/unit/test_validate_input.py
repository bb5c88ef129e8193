"""`connectors validate` on input that is not a manifest: one line, exit 2, never a traceback.

A CI pipeline feeds it whatever is in a pull request: binary files, half-edited
YAML, generated files nested absurdly deep. Each unreadable file must be named on
one line of stderr that says what is wrong with it, the exit status must be 2,
and the problems of the readable files must still be reported.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "examples" / "01-inbound-push-sftp-conversions.yaml").read_bytes()
DEEP_FLOW = b"spec: " + b"[" * 5000 + b"]" * 5000 + b"\n"
DEEP_MAPPINGS = b"spec: " + b"{a: " * 5000 + b"}" * 5000 + b"\n"


def validate(*paths: Path) -> tuple[int, str, str]:
    """`connectors validate PATHS` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate", *map(str, paths)])
    return code, out.getvalue(), err.getvalue()


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def assert_one_line_per_unreadable(code: int, out: str, err: str, paths: list[Path]) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert (code == 2) == bool(lines), (code, err)
    named = [next(p for p in paths if line.startswith(f"{p}:")) for line in lines]
    assert len(named) == len(set(named)), f"a file is named twice: {err}"
    lines = out.splitlines()
    if code == 0:
        # Success ends with the one summary line, the only line that names no file.
        assert re.fullmatch(r"\d+ files?, \d+ resources?: valid(, \d+ warnings?)?", lines.pop())
    for line in lines:
        assert any(line.startswith(f"{p}:") for p in paths), line


@pytest.mark.parametrize("content", [DEEP_FLOW, DEEP_MAPPINGS], ids=["lists", "mappings"])
def test_a_document_nested_5000_levels_deep_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "deep.yaml", content)
    code, out, err = validate(path)
    assert (code, out) == (2, "")
    assert err == f"{path}:1: not valid YAML: nested more than 100 levels deep\n"


def test_a_file_that_is_not_utf8_says_which_byte(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.yaml", "kind: Connection\nname: caf\xe9\n".encode("latin-1"))
    code, out, err = validate(path)
    assert (code, out) == (2, "")
    assert err == f"{path}: not UTF-8 text (byte 0xe9 at offset 26)\n"


def test_a_missing_file_says_so_in_words(tmp_path: Path) -> None:
    code, _, err = validate(tmp_path / "missing.yaml")
    assert code == 2
    assert err == f"{tmp_path / 'missing.yaml'}: cannot read: no such file or directory\n"


@pytest.mark.parametrize(("content", "message"), [
    (b"when: 2001-13-45\n", ":1: not valid YAML: cannot read the value: month must be in 1..12"),
    (b"count: " + b"7" * 5000 + b"\n",
     ":1: not valid YAML: cannot read the value: an integer of more than 4300 digits"),
    (b"kind: Connection\nname: \x00\n", ":2: not valid YAML: character U+0000 is not allowed"),
    (b"kind: Connection\nspec: [unclosed\n", ":3: not valid YAML: expected ',' or ']'"),
], ids=["bad-date", "huge-integer", "nul", "unclosed"])
def test_values_yaml_cannot_hold_are_one_line_with_their_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = write(tmp_path, "bad.yaml", content)
    code, out, err = validate(path)
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}{message}"), err
    assert err.count("\n") == 1


def test_every_unreadable_file_gets_its_line_and_readable_files_are_still_checked(
    tmp_path: Path,
) -> None:
    deep = write(tmp_path, "a-deep.yaml", DEEP_FLOW)
    latin = write(tmp_path, "b-latin1.yaml", b"name: caf\xe9\n")
    wrong = write(tmp_path, "c-wrong.yaml", EXAMPLE.replace(b"direction: Inbound",
                                                           b"direction: Sideways", 1))
    code, out, err = validate(tmp_path)
    assert code == 2
    assert [line.split(":")[0] for line in err.splitlines()] == [str(deep), str(latin)]
    assert out.startswith(f"{wrong}:"), out
    assert "spec.direction" in out


def test_odd_but_readable_documents_are_judged_not_crashed_on(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.yaml", (
        b"kind: [Connection]\n---\n"                       # an unhashable kind: not ours
        b'apiVersion: connectors.dev/v1alpha1\nkind: Credential\n'
        b'metadata: {name: "bad\\nname\\ud800"}\nspec: {type: Password, "x\\ty": 1}\n'
    ))
    code, out, err = validate(path)
    assert (code, err) == (1, "")
    # Names come from the file: a newline or a lone surrogate in one must not break
    # the one-line-per-problem output, nor the encoding of stdout.
    assert len(out.splitlines()) == 2, out
    assert "Credential/bad\\nname\\ud800" in out
    assert "spec.x\\ty" in out


def test_exit_status_through_a_real_process(tmp_path: Path) -> None:
    deep = write(tmp_path, "deep.yaml", DEEP_FLOW)
    latin = write(tmp_path, "latin1.yaml", b"name: caf\xe9\n")
    for path, status in ((deep, 2), (latin, 2), (REPO / "examples", 0)):
        result = subprocess.run([sys.executable, "-m", "connectors", "validate", str(path)],
                                capture_output=True, text=True, check=False, timeout=60)
        assert result.returncode == status, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == (1 if status == 2 else 0), result.stderr


# --- fuzzing -----------------------------------------------------------------------

def _mutated(edits: list[tuple[int, int, bytes]]) -> bytes:
    """The example manifest with bytes replaced, removed or inserted at given places."""
    data = bytearray(EXAMPLE)
    for position, remove, insert in edits:
        at = position % (len(data) + 1)
        data[at:at + remove] = insert
    return bytes(data)


YAML_NOISE = st.sampled_from([
    b"[", b"]", b"{", b"}", b":", b": ", b"- ", b"\n", b"  ", b"\t", b"'", b'"', b"&a ",
    b"*a", b"!!binary ", b"!!python/object ", b"? ", b"|", b">", b"%YAML 1.1\n", b"---\n",
    b"...\n", b"<<: ", b"\x00", b"\xe9", b"\xff\xfe", b"\xef\xbb\xbf", b"\\ud800", b"#",
    b"2001-02-30", b"0x", b"9" * 4400, b"[" * 300, b"{a: " * 300,
])
MALFORMED = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(YAML_NOISE, max_size=30).map(b"".join),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8),
                       st.one_of(YAML_NOISE, st.binary(max_size=4))),
             min_size=1, max_size=6).map(_mutated),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contents=st.lists(MALFORMED, min_size=1, max_size=3))
def test_fuzz_malformed_input_never_crashes(fuzz_dir: Path, contents: list[bytes]) -> None:
    paths = [write(fuzz_dir, f"f{i}.yaml", content) for i, content in enumerate(contents)]
    code, out, err = validate(*paths)
    assert_one_line_per_unreadable(code, out, err, paths)
