"""The one output-path guard every sfn command that writes goes through.

An output may never be an input, lie inside one, or contain one (symlinks resolved on both sides), so
no command can overwrite or delete what it reads. `--overwrite` replaces only what sfn itself wrote: a
directory holding one of `SFN_MARKERS`, or a file the caller recognises as its own; anything else
needs the explicit `--overwrite-any`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from sfn.errors import SfnError, SfnErrors

# Files only sfn writes: the provenance of a surgery's model and the settings of a freeze run.
SFN_MARKERS = ("sfn_provenance.json", "freeze_settings.json")
PathLike = str | os.PathLike


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _input_paths(given: PathLike) -> list[Path]:
    """The resolved input, and for a directory the targets its symlinked files point to (a Hugging
    Face cache snapshot links every file to a blob elsewhere)."""
    source = Path(given).expanduser()
    if not source.exists():
        return []  # a hub id: its files live in the Hugging Face cache, resolved elsewhere
    resolved = [source.resolve()]
    if source.is_dir():
        resolved += [entry.resolve() for entry in source.iterdir() if entry.is_symlink()]
    return resolved


def overlap_problems(target: Path, inputs: Iterable[PathLike]) -> list[str]:
    """Why `target` (resolved) may not be written, given the inputs a command reads."""
    problems = []
    for given in inputs:
        for source in _input_paths(given):
            if target == source:
                relation = "it is that input"
            elif source.is_dir() and _inside(target, source):
                relation = "it lies inside it"
            elif _inside(source, target):
                relation = "it contains it"
            else:
                continue
            problems.append(
                f"refusing to write {target}: it overlaps the input {source} ({relation}); "
                "choose an output outside every input"
            )
            break
    return list(dict.fromkeys(problems))  # one line per input, however often it is given (`delta B B`)


def written_by_sfn(directory: Path) -> bool:
    return any((directory / marker).is_file() for marker in SFN_MARKERS)


def guard_output(
    out: PathLike,
    *,
    inputs: Iterable[PathLike] = (),
    file: bool = False,
    replace: bool = True,
    overwrite: bool = False,
    overwrite_any: bool = False,
    ours: Callable[[Path], bool] | None = None,
) -> Path:
    """The resolved output path, or an `SfnError` before any work.

    `file`: the output is one file, not a directory. `replace`: the command replaces an existing
    output whole (surgery), so an existing one needs `overwrite` and, unless sfn wrote it
    (`ours(path)`, by default a directory holding one of `SFN_MARKERS`), `overwrite_any`. Commands
    that resume a run in place (freeze, eval) pass `replace=False` and get the overlap check only.
    """
    target = Path(out).expanduser().resolve()
    problems = overlap_problems(target, inputs)
    if problems:
        raise SfnErrors(problems, "the output overlaps an input") if len(problems) > 1 else SfnError(problems[0])
    kind = "file" if file else "directory"
    if target.exists() and target.is_dir() == file:
        raise SfnError(f"{target} exists and is not a {kind}; choose another output path")
    if not replace or not target.exists() or (not file and not any(target.iterdir())):
        return target
    if not overwrite and not overwrite_any:
        raise SfnError(f"{target} {'exists' if file else 'is not empty'}; pass --overwrite (Python: overwrite=True) to replace it")
    recognised = (ours or written_by_sfn)(target)
    if not recognised and not overwrite_any:
        what = "an sfn output" if file else f"an sfn output (it holds none of {', '.join(SFN_MARKERS)})"
        raise SfnError(
            f"{target} is not {what}, so --overwrite leaves it alone; choose another output, or pass --overwrite-any "
            f"(Python: overwrite_any=True) to replace it{'' if file else ' and everything in it'}"
        )
    return target
