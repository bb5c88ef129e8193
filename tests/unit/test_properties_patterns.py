"""Property-based tests of filenamePattern (issue 11): the API accepts exactly
the documented patterns, and matches_pattern means what the documentation
says, `*` any run of characters, `?` one character, every other character
itself, checked against a plain reference matcher."""

from __future__ import annotations

import functools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from connectors.api.connection import FilenamePattern
from connectors.landing.names import matches_pattern

PROPERTIES = settings(derandomize=True, deadline=None, max_examples=1000, database=None)

ALPHABET = "ab.-*?[]!^\\\n"
NAME_CHARS = st.text(alphabet=ALPHABET + "é😀", max_size=10)
PATTERN_CHARS = st.text(alphabet=ALPHABET, min_size=1, max_size=8)
API = TypeAdapter(FilenamePattern)


def reference(name: str, pattern: str) -> bool:
    """`*` matches any run of characters (also none), `?` exactly one."""
    @functools.cache
    def match(i: int, j: int) -> bool:
        if j == len(pattern):
            return i == len(name)
        if pattern[j] == "*":
            return match(i, j + 1) or (i < len(name) and match(i + 1, j))
        if i == len(name):
            return False
        return (pattern[j] == "?" or pattern[j] == name[i]) and match(i + 1, j + 1)
    return match(0, 0)


def api_accepts(pattern: str) -> bool:
    try:
        API.validate_python(pattern)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("name", "pattern", "expected"), [
    ("conversions_1.csv", "conversions_*.csv", True),
    ("conversions_.csv", "conversions_*.csv", True),
    ("conversions_1.csv", "conversions_?.csv", True),
    ("conversions_12.csv", "conversions_?.csv", False),
    ("a", "?*", True),
    ("", "?*", False),
    ("[a]", "[a]", True),
])
def test_the_reference_matcher(name: str, pattern: str, expected: bool) -> None:
    assert reference(name, pattern) is expected


@PROPERTIES
@given(name=NAME_CHARS, pattern=PATTERN_CHARS)
@example(name="a", pattern="[a]")
@example(name="[a]", pattern="[a]")
@example(name="b", pattern="[!a]")
@example(name="]", pattern="]")
@example(name="a\nb", pattern="a*b")
@example(name="\n", pattern="?")
@example(name="a\\b", pattern="a\\?")
def test_matches_pattern_agrees_with_the_documented_meaning(name: str, pattern: str) -> None:
    assert matches_pattern(name, pattern) is reference(name, pattern), (name, pattern)


@PROPERTIES
@given(name=st.text(max_size=20), pattern=st.text(min_size=1, max_size=12))
def test_matches_pattern_agrees_on_any_text(name: str, pattern: str) -> None:
    assert matches_pattern(name, pattern) is reference(name, pattern), (name, pattern)


@PROPERTIES
@given(name=st.text(max_size=20))
def test_no_pattern_matches_everything(name: str) -> None:
    assert matches_pattern(name, None) is True
    assert matches_pattern(name, "*") is True


@PROPERTIES
@given(pattern=st.one_of(PATTERN_CHARS, st.just("/x"), st.text(max_size=300)))
@example(pattern="conversions_*.csv")
@example(pattern="[abc].csv")
@example(pattern="a/b")
@example(pattern="a\\b")
@example(pattern="")
@example(pattern="x" * 256)
def test_the_api_accepts_exactly_patterns_without_separators_or_brackets(pattern: str) -> None:
    documented = 1 <= len(pattern) <= 255 and not set(pattern) & set("/\\[]")
    assert api_accepts(pattern) is documented, pattern
