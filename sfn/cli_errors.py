"""The one error convention of every `sfn` command, shared by sfn/cli.py and each sub-CLI.

- A user error (an `SfnError` from the library, or a bad option or argument caught by click) prints
  `error: ...` on stderr and exits 2.
- An interrupted run (Ctrl-C) says what was kept and exits 130 (128 + SIGINT, what shells report).

It imports nothing but click and sfn.errors: every sub-CLI uses it, and `sfn -h` must stay fast.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from sfn.errors import SfnError

USER_ERROR = 2
INTERRUPTED = 130
# What a command keeps when stopped early, unless it says otherwise: outputs are written at the end
# (model directories atomically), so nothing partial is left behind.
NOTHING_KEPT = "stopped before the outputs were written; nothing was kept"
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def fail(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit with the user-error status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(USER_ERROR)


def stop_interrupted(kept: str) -> NoReturn:
    """Say what an interrupted run kept and exit with status 130."""
    click.echo(f"interrupted: {kept}", err=True)
    sys.exit(INTERRUPTED)


def report_errors(command: Callable | None = None, *, kept: str = NOTHING_KEPT) -> Callable:
    """Decorate a command callback: an `SfnError` becomes `error: ...` (exit 2); Ctrl-C says `kept` (exit 130).

    Use as `@report_errors` or `@report_errors(kept="what an interrupted run leaves")`.
    """

    def decorate(callback: Callable) -> Callable:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except SfnError as exc:
                fail(str(exc))
            except KeyboardInterrupt:
                stop_interrupted(kept)

        return wrapper

    return decorate(command) if command is not None else decorate


class _Convention:
    """`main` of the outermost command: click's own errors ("Error: ...", exit 1 for some) follow the convention."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except _NO_ARGS_IS_HELP as error:  # a bare `sfn`: click shows the help, not an error
            error.show()
            sys.exit(error.exit_code)
        except click.UsageError as error:
            if error.ctx is not None:
                click.echo(f"{error.ctx.get_usage()}\nTry '{error.ctx.command_path} "
                           f"{error.ctx.help_option_names[0]}' for help.\n", err=True)
            fail(error.format_message())
        except click.ClickException as error:
            fail(error.format_message())
        except SfnError as error:  # a command without @report_errors
            fail(str(error))
        except click.Abort:  # Ctrl-C outside a command's own handling (click turns it into Abort)
            stop_interrupted(NOTHING_KEPT)
        sys.exit(result if isinstance(result, int) else 0)


class SfnCommand(_Convention, click.Command):
    """A click command that follows the sfn error convention when run on its own."""


class SfnGroup(_Convention, click.Group):
    """A click group that follows the sfn error convention; its subcommands are `SfnCommand`s."""

    command_class = SfnCommand
    group_class = type  # subgroups are SfnGroups too


# Shared by every command that opens a checkpoint (their refusal of pickles suggests it).
pickle_option = click.option("--allow-pickle", is_flag=True, help="Load pickled .bin/.pt checkpoints (runs their unpickler).")


_VERBOSITY = {"quiet": False, "verbose": False}


def set_verbosity(*, quiet: bool = False, verbose: bool = False) -> None:
    """What every command prints besides its result: --quiet shows errors only (no progress bars, no
    warnings), --verbose adds informational logs of sfn and transformers."""
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other; give one of them")
    _VERBOSITY.update(quiet=quiet, verbose=verbose)
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.getLogger("sfn").setLevel(level)
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity(level)
    else:  # read by transformers when it is first imported
        os.environ["TRANSFORMERS_VERBOSITY"] = logging.getLevelName(level).lower()


def show_progress() -> bool:
    """Whether the running command draws progress bars (not after --quiet)."""
    return not _VERBOSITY["quiet"]


def with_verbosity(command: click.Command) -> click.Command:
    """Give `command`, or every command of a group, the same --quiet/-q and --verbose/-v (once)."""
    if getattr(command, "_sfn_verbosity", False):
        return command
    command._sfn_verbosity = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            with_verbosity(subcommand)
        return command
    command.params += [
        click.Option(["--quiet", "-q"], is_flag=True, help="Print the result and errors only: no progress, no warnings."),
        click.Option(["--verbose", "-v"], is_flag=True, help="Also print informational messages of sfn and transformers."),
    ]
    callback = command.callback

    @functools.wraps(callback)
    def run(*args, quiet: bool = False, verbose: bool = False, **kwargs):
        set_verbosity(quiet=quiet, verbose=verbose)
        return callback(*args, **kwargs)

    command.callback = run
    return command
