"""Command-line options whose default comes from an environment variable.

The operator's Deployment, the listeners' Deployments and the transfer jobs'
CronJobs all configure the one `connectors` command through the environment;
a flag on the command line wins over the variable, the variable over the
built-in default. An unset or empty variable counts as absent. The help of
each option names its variable.

A value from the environment is a string, and argparse converts a string
default with the option's `type` as if it had been typed, so a bad value is
reported like a bad flag.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def env_value(name: str, default: str | None = None) -> str | None:
    """The variable's value, or `default` when it is unset or empty."""
    return os.environ.get(name) or default


def env_option(
    parser: argparse._ActionsContainer,
    *flags: str,
    env: str,
    help: str,
    default: Any = None,
    **kwargs: Any,
) -> argparse.Action:
    """Adds an option whose default is $`env` when set, else `default`."""
    return parser.add_argument(
        *flags,
        default=env_value(env, default),
        help=_help(help, env, default),
        **kwargs,
    )


def env_flag(
    parser: argparse._ActionsContainer,
    *flags: str,
    env: str,
    help: str,
    action: str | type[argparse.Action] = "store_true",
) -> argparse.Action:
    """Adds an on/off option, on when $`env` is 1, true, yes or on (any case)."""
    value = env_value(env, "") or ""
    return parser.add_argument(
        *flags,
        action=action,
        default=value.lower() in TRUE_WORDS,
        help=f"{help} [env {env}=true]",
    )


def _help(text: str, env: str, default: Any) -> str:
    # argparse %-formats help texts: a literal % in a default must be doubled.
    shown = "" if default in (None, "") else f" (default: {str(default).replace('%', '%%')})"
    return f"{text}{shown} [env {env}]"
