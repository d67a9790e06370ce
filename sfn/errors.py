"""The one exception type sfn raises for bad input, so the CLI can print it without a traceback."""


class SfnError(Exception):
    """A problem with the user's input: the message names what is wrong and how to fix it."""


class SfnErrors(SfnError):
    """Several problems found at once (validation reports every problem, not just the first)."""

    def __init__(self, problems: list[str], header: str = "found problems"):
        self.problems = list(problems)
        super().__init__(header + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


_NO_VALUE = object()


def argument(name: str, value: object = _NO_VALUE, *, flag: str | None = None) -> str:
    """An argument as a message names it: its Python name (what `sfn.freeze(...)` and the other
    functions take) first, then the command-line flag it comes from, so that one message serves a
    Python caller and a `sfn` command alike: `prompt_format='x' (--format x)`, `max_steps (--max-steps)`.
    `flag=""` marks a setting the command line does not have."""
    flag = "--" + name.replace("_", "-") if flag is None else flag
    if not flag:
        return name if value is _NO_VALUE else f"{name}={value!r}"
    if value is _NO_VALUE:
        return f"{name} ({flag})"
    if value is True:  # a switch: the flag alone turns it on
        return f"{name}=True ({flag})"
    return f"{name}={value!r} ({flag} {value})"
