"""The one exception type sfn raises for bad input, so the CLI can print it without a traceback."""


class SfnError(Exception):
    """A problem with the user's input: the message names what is wrong and how to fix it."""


class SfnErrors(SfnError):
    """Several problems found at once (validation reports every problem, not just the first)."""

    def __init__(self, problems: list[str], header: str = "found problems"):
        self.problems = list(problems)
        super().__init__(header + ":\n" + "\n".join(f"  - {p}" for p in self.problems))
