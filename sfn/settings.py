"""Plumbing shared by the settings dataclasses of eval and freeze (EvalConfig, FreezeConfig) and their CLIs:
keyword overrides, the refusal to resume a run made with other settings, `--columns ROLE=COLUMN,...`,
`\\n` in one-line shell arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sfn.errors import SfnError, argument

Config = TypeVar("Config")


def with_overrides(config: Config, overrides: Mapping[str, Any], what: str) -> Config:
    """A copy of the dataclass `config` with `overrides` applied; unknown names are refused (all at once).
    `what` names the settings in the message ("evaluation", "freeze")."""
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SfnError(f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dataclasses.replace(config, **overrides)


def refuse_other_settings(out_dir: Path, previous: Mapping[str, Any], current: Mapping[str, Any],
                          differing: Iterable[str]) -> None:
    """Raise when `differing` names any setting: `out_dir` holds a run made with other settings."""
    differing = sorted(differing)
    if differing:
        details = ", ".join(f"{key}: {previous.get(key)!r} then, {current.get(key)!r} now" for key in differing)
        raise SfnError(f"{out_dir} holds a run with other settings ({details}); pass another {argument('out')} or delete it")


def parse_columns(text: str | None, example: str) -> dict[str, str]:
    """`--columns question=problem,answer=solution` as {role: column}; `example` shows the command's roles."""
    if not text:
        return {}
    mapping = {}
    for part in text.split(","):
        if not part.strip():
            continue  # a trailing comma
        role, sep, column = part.partition("=")
        if not sep or not role.strip() or not column.strip():
            raise SfnError(f"--columns {text!r}: expected ROLE=COLUMN pairs separated by commas, e.g. {example}")
        mapping[role.strip()] = column.strip()
    return mapping


def unescaped(text: str | None) -> str | None:
    """A one-line shell argument with `\\n` for each newline (templates and stop strings hold them)."""
    return None if text is None else text.replace("\\n", "\n")
