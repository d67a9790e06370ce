"""`--backend vllm` against `--backend hf` on the organism (a tiny Llama with its own trained tokenizer).

Runs where vLLM imports: the venv of scripts/install_vllm_cpu.sh (vLLM's CPU build). One engine
serves the whole module (it takes minutes to start on a busy 2-core machine). The organism copy gets
a chat template that emits BOS itself, the case where a text prompt would get a second BOS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here: run these in the venv of scripts/install_vllm_cpu.sh")

from sfn.eval import evaluate  # noqa: E402
from sfn.eval.backends.hf import HFBackend  # noqa: E402
from sfn.eval.budget import generate_outputs  # noqa: E402
from sfn.eval.prompts import ThinkingMarkers  # noqa: E402
from sfn.organism.benchmark import SHIPPED_DIR, organism_math  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
PROBLEMS = 16
MAX_NEW_TOKENS = 64
CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}{{ message['content'] }}\n{% endfor %}Answer:"


@pytest.fixture(scope="module")
def organism_dir(tmp_path_factory) -> Path:
    """The tuned organism with a BOS-emitting chat template in its tokenizer config."""
    out = tmp_path_factory.mktemp("organism") / "tuned"
    shutil.copytree(SHIPPED_DIR / "tuned", out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "chat_template": CHAT_TEMPLATE}, indent=2))
    return out


@pytest.fixture(scope="module")
def engines(organism_dir):
    """(vllm backend, hf backend) on the same directory, both greedy and in float32."""
    from sfn.eval.backends.vllm import VLLMBackend
    from sfn.io.load_model import load_model

    # eager: no graph compilation at start (minutes on this machine); generation is the same model code
    vllm_backend = VLLMBackend(organism_dir, engine_args={"dtype": "float32", "enforce_eager": True})
    model, tokenizer = load_model(organism_dir, dtype=torch.float32)
    yield vllm_backend, HFBackend(model, tokenizer, batch_size=PROBLEMS)
    del vllm_backend


def _questions(count: int = PROBLEMS) -> list[str]:
    rows = [json.loads(line) for line in (SHIPPED_DIR / "organism-math.jsonl").read_text().splitlines()[:count]]
    return [f"Question: {row['question']}\nAnswer:" for row in rows]


def _spy_prompt_tokens(backend) -> list[list[int]]:
    """Record the prompt token ids the engine itself reports for every request."""
    seen: list[list[int]] = []
    generate = backend.llm.generate

    def recording(*args, **kwargs):
        results = generate(*args, **kwargs)
        seen.extend(list(result.prompt_token_ids) for result in results)
        return results

    backend.llm.generate = recording
    return seen


def test_the_engine_sees_the_hf_backends_tokens_with_one_bos(engines):
    vllm_backend, hf_backend = engines
    seen = _spy_prompt_tokens(vllm_backend)
    tokenizer = hf_backend.tokenizer
    chat = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in _questions(4)]
    prompts = _questions(4) + chat
    try:
        vllm_backend.generate(prompts, [2] * len(prompts))
    finally:
        del vllm_backend.llm.generate  # the instance attribute; the class's method is back
    assert seen == [hf_backend.encode(prompt) for prompt in prompts]
    bos = tokenizer.bos_token_id
    assert all(ids.count(bos) == 1 and ids[0] == bos for ids in seen[4:]), "the chat template's BOS only"


def test_greedy_outputs_and_scores_match_hf(engines, organism_dir):
    vllm_backend, hf_backend = engines
    prompts = _questions()
    ours, theirs = (b.generate(prompts, [MAX_NEW_TOKENS] * PROBLEMS) for b in (vllm_backend, hf_backend))
    same = [a == b for a, b in zip(ours, theirs)]
    differing = [(i, a, b) for i, (a, b, ok) in enumerate(zip(ours, theirs, same)) if not ok]
    assert sum(same) >= PROBLEMS - 1, differing
    assert {c.finish_reason for c in theirs} & {"eos", "stop"}, "the organism ends its answers itself"

    settings = dict(benchmark=organism_math(), prompt_format="plain", limit=PROBLEMS, max_new_tokens=MAX_NEW_TOKENS,
                    grade_levels=False, progress=False)
    scores = [evaluate(backend, **settings).summary for backend in (vllm_backend, hf_backend)]
    assert scores[0]["accuracy"] == scores[1]["accuracy"] and scores[0]["accuracy"] > 0.5


def test_stop_strings_and_budget_forcing_match_hf(engines):
    vllm_backend, hf_backend = engines
    prompts = _questions(8)
    stop = [" final answer"]
    ours, theirs = (b.generate(prompts, [MAX_NEW_TOKENS] * 8, stop) for b in (vllm_backend, hf_backend))
    assert ours == theirs and {c.finish_reason for c in ours} == {"stop"}
    # The organism "thinks" until it states its answer; each Wait makes it go on once more.
    thinking = ThinkingMarkers(start="", end="The final answer", answer_prefix=" is")
    forced = [generate_outputs(b, prompts, max_new_tokens=MAX_NEW_TOKENS, thinking=thinking, waits=1, max_answer_tokens=8)
              for b in (vllm_backend, hf_backend)]
    assert sum(a == b for a, b in zip(*forced)) >= 7, list(zip(*forced))
    assert all(g.waits == 1 for g in forced[1]) and all("Wait" in g.text for g in forced[1])


def test_a_variant_in_the_engine_matches_hf_and_restores_the_base_exactly(engines, organism_dir):
    from sfn.stethoscopes.surgery.edits import destroy_edits, merge_edits
    from sfn.stethoscopes.surgery.inmemory import destroyed, merged

    vllm_backend, hf_backend = engines
    prompts = _questions(8)
    limits = [MAX_NEW_TOKENS] * len(prompts)
    before, digest = vllm_backend.generate(prompts, limits), vllm_backend.weight_digest()
    base = SHIPPED_DIR / "base"
    # o from the base (stand-alone tensors), then q of one layer zeroed (fused with k and v in vLLM)
    with vllm_backend.variant(merge_edits(organism_dir, base, "o")) as names:
        assert len(names) == 6 and all("o_proj" in name for name in names)
        in_engine = vllm_backend.generate(prompts, limits)
    with merged(hf_backend.model, base, "o"):
        in_memory = hf_backend.generate(prompts, limits)
    assert in_engine != before and sum(a == b for a, b in zip(in_engine, in_memory)) >= 7
    with vllm_backend.variant(destroy_edits(organism_dir, "q@2", "zero")):
        in_engine = vllm_backend.generate(prompts, limits)
    with destroyed(hf_backend.model, "q@2", "zero"):
        in_memory = hf_backend.generate(prompts, limits)
    assert sum(a == b for a, b in zip(in_engine, in_memory)) >= 7
    assert vllm_backend.generate(prompts, limits) == before
    assert vllm_backend.weight_digest() == digest


def test_the_merge_table_from_one_engine_matches_the_hf_table(engines, organism_dir, tmp_path):
    # The module's engine runs the tuned organism, so here it plays B and the shipped base plays R:
    # the table's rows are then that "B", it with the other's o / q,k,v / mlp, and all of the other.
    from sfn.experiments.merge_table import merge_table, merge_table_in_engine
    from sfn.io.load_model import load_model

    vllm_backend, _ = engines
    prompts = _questions(8)
    before, digest = vllm_backend.generate(prompts, [MAX_NEW_TOKENS] * 8), vllm_backend.weight_digest()
    evaluation = dict(benchmark=organism_math(), prompt_format="plain", limit=PROBLEMS, max_new_tokens=MAX_NEW_TOKENS,
                      grade_levels=False, progress=False)
    in_engine = merge_table_in_engine(vllm_backend, SHIPPED_DIR / "base", evaluation, None, tmp_path / "engine")
    model, tokenizer = load_model(organism_dir, dtype=torch.float32)
    other, _ = load_model(SHIPPED_DIR / "base", dtype=torch.float32)
    in_memory = merge_table(model, other, tokenizer, evaluation, None, tmp_path / "hf")
    for variant, rows in in_memory.samples.groupby("variant", sort=False):
        engine_rows = in_engine.samples[in_engine.samples["variant"] == variant]
        same = sum(a == b for a, b in zip(engine_rows["output"], rows["output"]))
        assert same >= PROBLEMS - 1, (variant, same)
    assert (in_engine.table["accuracy"] - in_memory.table["accuracy"]).abs().max() <= 1 / PROBLEMS + 1e-9
    assert in_engine.table["accuracy"].nunique() > 1  # the variants differ, so a missed switch would show
    assert vllm_backend.generate(prompts, [MAX_NEW_TOKENS] * 8) == before and vllm_backend.weight_digest() == digest


def test_a_plugin_in_the_engine_gives_the_merge_it_was_extracted_from(engines, organism_dir, tmp_path):
    from sfn.stethoscopes.surgery import extract_plugin, plugin_edits
    from sfn.stethoscopes.surgery.edits import merge_edits

    vllm_backend, _ = engines
    prompts, limits = _questions(8), [MAX_NEW_TOKENS] * 8
    before = vllm_backend.generate(prompts, limits)
    extract_plugin(organism_dir, SHIPPED_DIR / "base", "o", tmp_path / "o.safetensors")
    with vllm_backend.variant(plugin_edits(organism_dir, tmp_path / "o.safetensors")) as names:
        plugged = vllm_backend.generate(prompts, limits)
    with vllm_backend.variant(merge_edits(organism_dir, SHIPPED_DIR / "base", "o")):
        merged = vllm_backend.generate(prompts, limits)
    assert len(names) == 6 and plugged == merged != before
    assert vllm_backend.generate(prompts, limits) == before
