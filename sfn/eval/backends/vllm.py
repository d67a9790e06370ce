"""Generation with vLLM (GPU only, optional extra `sfn[vllm]`), same `Completion`s as the hf backend."""

from __future__ import annotations

from collections.abc import Sequence

from sfn.errors import SfnError, argument
from sfn.eval.backends.base import Completion


class VLLMBackend:
    """A vLLM engine over a model directory or hub id; vLLM cannot take an in-memory torch model."""

    def __init__(self, source: str, *, do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0):
        try:
            from vllm import LLM
        except ImportError:
            raise SfnError(
                f"{argument('backend', 'vllm')} needs vLLM: `pip install 'sfn[vllm]'` on a machine with a CUDA GPU; "
                f"or use {argument('backend', 'hf')}"
            ) from None
        self.llm = LLM(model=str(source), seed=seed)
        self.tokenizer = self.llm.get_tokenizer()
        self.temperature = temperature if do_sample else 0.0
        self.top_p = top_p if do_sample else 1.0
        self.seed = seed

    @property
    def context_length(self) -> int | None:
        return getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None)

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

        # vLLM's min_tokens holds back end of sequence and stop_token_ids, not stop strings: a
        # one-token stop string is passed as a token id too (as s1 does), so the minimum covers it.
        stop_ids = []
        if min_new_tokens:
            encoded = [self.tokenizer.encode(marker, add_special_tokens=False) for marker in stop]
            stop_ids = [ids[0] for ids in encoded if len(ids) == 1]
        params = [
            SamplingParams(
                max_tokens=limit,
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
        results = self.llm.generate(list(prompts), params, use_tqdm=False)
        return [_completion(result.outputs[0]) for result in results]


def _completion(output) -> Completion:
    if output.finish_reason == "length":
        reason = "length"
    else:
        # vLLM reports the matched stop string in stop_reason; None or a token id means end of sequence.
        reason = "stop" if isinstance(output.stop_reason, str) else "eos"
    return Completion(output.text, len(output.token_ids), reason)
