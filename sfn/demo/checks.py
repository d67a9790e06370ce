"""Everything a demo on a given pair needs, checked before its first stage: every problem at once.

Delta needs two checkpoints of one architecture; Merge, Destruction and Freeze generate text, so B
needs a tokenizer (and a chat template when the prompts use one); Merge and Freeze score the
benchmark, whose rows must load; Freeze reads R's training data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfn.errors import SfnError, SfnErrors


def _message(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _architecture(label: str, source: str, problems: list[str]) -> dict[str, Any] | None:
    from sfn.io import open_checkpoint
    from sfn.registry import module_map

    try:
        checkpoint = open_checkpoint(source)
    except SfnError as error:
        problems.append(f"{label} {source}: {_message(error)}")
        return None
    try:
        mapped = module_map(checkpoint)
        return {"model_type": mapped.model_type, "num_layers": mapped.num_layers,
                "shapes": {name: info.shape for name, info in checkpoint.tensors().items()}}
    finally:
        checkpoint.close()


def _pair_problems(base: str, tuned: str, problems: list[str]) -> None:
    found = {label: _architecture(label, source, problems) for label, source in (("--base", base), ("--tuned", tuned))}
    b, r = found["--base"], found["--tuned"]
    if b is None or r is None:
        return
    for key in ("model_type", "num_layers"):
        if b[key] != r[key]:
            problems.append(f"--base is {key} {b[key]} and --tuned {r[key]}: a pair must share its architecture")
    only_base, only_tuned = sorted(set(b["shapes"]) - set(r["shapes"])), sorted(set(r["shapes"]) - set(b["shapes"]))
    reshaped = sorted(name for name in set(b["shapes"]) & set(r["shapes"]) if b["shapes"][name] != r["shapes"][name])
    if only_base or only_tuned or reshaped:
        details = [f"{len(names)} {what} (e.g. {names[0]})" for what, names in
                   (("tensors only in --base", only_base), ("tensors only in --tuned", only_tuned),
                    ("tensors of other shapes", reshaped)) if names]
        problems.append(f"--base and --tuned do not share their tensors: {'; '.join(details)}")


def _tokenizer_problems(base: str, prompt_format: str, problems: list[str]) -> None:
    from transformers import AutoTokenizer

    from sfn.io.load_model import resolve_model_path

    try:
        directory, gguf_file = resolve_model_path(base)
        tokenizer = AutoTokenizer.from_pretrained(directory, **({"gguf_file": gguf_file} if gguf_file else {}))
    except SfnError:
        return  # the checkpoint problem is reported already
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds for a missing tokenizer
        problems.append(f"--base {base} has no tokenizer ({_message(error)}); the demo generates text and needs one: "
                        "copy the tokenizer files (tokenizer.json, tokenizer_config.json) of its model into it")
        return
    if not tokenizer("Ann has 3 apples.")["input_ids"]:
        # transformers builds an empty tokenizer of the model's type when the folder has no files for one
        problems.append(f"--base {base} has no tokenizer (no tokenizer files: an empty vocabulary encodes nothing); the "
                        "demo generates text and needs one: copy the tokenizer files (tokenizer.json, "
                        "tokenizer_config.json) of its model into it")
        return
    if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        problems.append(f"--base {base}'s tokenizer has no chat template for the chat prompt format; use the plain format")


def _benchmark_problems(benchmark: str, data: str | None, problems: list[str]) -> None:
    from sfn.eval.benchmarks import get_benchmark, load_samples

    if data and not Path(data).is_file():
        problems.append(f"--data {data} does not exist")
        return
    try:
        load_samples(get_benchmark(benchmark), data, 1)
    except SfnError as error:
        problems.append(f"--benchmark {benchmark}: {_message(error)}")


def _train_data_problems(train_data: str | None, problems: list[str]) -> None:
    from sfn.stethoscopes.freeze.data import read_records

    if train_data is None:
        return
    if not Path(train_data).is_file():
        problems.append(f"--train-data {train_data} does not exist")
        return
    try:
        read_records(train_data, limit=2)
    except SfnError as error:
        problems.append(f"--train-data {train_data}: {_message(error)}")


def check_custom_pair(base: str, tuned: str, benchmark: str, data: str | None, train_data: str | None,
                      prompt_format: str) -> None:
    """Raise `SfnErrors` naming every missing or mismatched input of the four stages; load no weights."""
    problems: list[str] = []
    _pair_problems(base, tuned, problems)
    _tokenizer_problems(base, prompt_format, problems)
    _benchmark_problems(benchmark, data, problems)
    _train_data_problems(train_data, problems)
    if problems:
        raise SfnErrors(problems, "cannot run the demo on this pair (nothing was run or written)")
