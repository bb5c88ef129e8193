"""The one option helper: flags with environment fallbacks, for all three mains."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from connectors.options import env_flag, env_option, env_value


def parser_with_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    env_option(parser, "--retries", env="T_RETRIES", type=int, default=3, help="retries")
    env_option(parser, "--root", env="T_ROOT", type=Path, default=Path("/data"), help="root")
    env_option(parser, "--name", env="T_NAME", help="name")
    env_flag(parser, "--tls", env="T_TLS", help="tls")
    return parser


def test_the_command_line_wins_then_the_variable_then_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert parser_with_options().parse_args([]).retries == 3
    monkeypatch.setenv("T_RETRIES", "7")
    parser = parser_with_options()
    assert parser.parse_args([]).retries == 7
    assert parser.parse_args(["--retries", "1"]).retries == 1


def test_a_value_from_the_environment_is_converted_by_the_type(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_ROOT", "/volume")
    assert parser_with_options().parse_args([]).root == Path("/volume")
    monkeypatch.setenv("T_RETRIES", "many")
    with pytest.raises(SystemExit):
        parser_with_options().parse_args([])


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("T_RETRIES", "T_ROOT", "T_NAME", "T_TLS"):
        monkeypatch.setenv(name, "")
    args = parser_with_options().parse_args([])
    assert (args.retries, args.root, args.name, args.tls) == (3, Path("/data"), None, False)
    assert env_value("T_NAME", "fallback") == "fallback"


@pytest.mark.parametrize(("value", "on"), [("1", True), ("true", True), ("True", True),
                                           ("yes", True), ("on", True), ("false", False),
                                           ("0", False), ("no", False)])
def test_a_flag_is_on_for_the_usual_words(monkeypatch: pytest.MonkeyPatch, value: str,
                                          on: bool) -> None:
    monkeypatch.setenv("T_TLS", value)
    assert parser_with_options().parse_args([]).tls is on


def test_help_names_the_variable_and_the_default() -> None:
    text = parser_with_options().format_help()
    assert "(default: 3) [env T_RETRIES]" in text
    assert "[env T_NAME]" in text
    assert "[env T_TLS=true]" in text


@pytest.mark.parametrize("module", ["connectors.jobs.main", "connectors.listeners.main",
                                    "connectors.controller.main"])
def test_every_main_names_a_variable_for_its_options(module: str) -> None:
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(module).add_arguments(parser)
    without = {"--help", "--standalone", "--all-namespaces", "--verbose"}
    for action in parser._actions:
        flags = set(action.option_strings)
        if flags and not flags & without:
            assert "[env " in (action.help or ""), action.option_strings
