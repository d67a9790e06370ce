"""What one cell of the SmolLM2-135M map costs, part by part: the decoder, the head, the KLs, padding,
the attention implementation and threads, next to what the map did before (the head at every row's
kept positions, a plain 4096-position batch cap, the KL on whole arrays).

    python benchmarks/profile_map_cell.py [--model FILE.gguf] [--tokens 2048] [--repeat 2]

Times are CPU seconds of one thread (best of --repeat), which a machine busy with other work disturbs
far less than wall time; the last rows are wall seconds with two threads. The load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from bench_map import probe_file, smollm2_file


def cpu_seconds(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import sfn
    from sfn.experiments.divergence import PrefixCache, _batch, _length, answer_log_probs, probe_batches, token_kl
    from sfn.experiments.probes import build_probe
    from sfn.stethoscopes.surgery.inmemory import decoder_layers

    model, tokenizer = sfn.load_model(args.model or smollm2_file(), dtype=torch.float32)
    probe = build_probe(str(probe_file(tokenizer, args.tokens)), tokenizer, {}, prompt_format="raw", max_new_tokens=1, cache_dir=None)
    real = sum(len(s.prompt_ids) + len(s.text_ids) for s in probe.sequences)
    batches = probe_batches(probe, tokenizer.pad_token_id or 0)
    print(f"load average {os.getloadavg()[0]:.2f}; attention {model.config._attn_implementation}; {probe.tokens} answer "
          f"tokens, {real} with prompts")
    rows = []

    def plain_cap(cap: int) -> list:  # the former batching: rows while rows x longest <= cap
        order = sorted(range(len(probe.sequences)), key=lambda i: -_length(probe, i))
        groups, current = [], []
        for index in order:
            if current and (len(current) + 1) * _length(probe, current[0]) > cap:
                groups.append(current)
                current = []
            current.append(index)
        return [_batch(probe, group, tokenizer.pad_token_id or 0) for group in [*groups, current]]

    for label, chosen in (("former plain cap of 4096 positions", plain_cap(4096)), ("batches padding under a tenth", batches)):
        positions = sum(b.input_ids.numel() for b in chosen)
        with torch.no_grad():
            decoder = cpu_seconds(lambda: [model.model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
                                           for b in chosen], args.repeat)
        rows.append((f"decoder, {label}: {len(chosen)} batches, {positions} positions, padding {1 - real / positions:.1%}", decoder))
    with torch.no_grad():
        hidden = [model.model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).last_hidden_state for b in batches]

        def former_head():  # transformers' logits_to_keep: every row at every position some row keeps
            for b, h in zip(batches, hidden):
                keep, where = torch.unique(b.positions, sorted=True, return_inverse=True)
                torch.log_softmax(model.lm_head(h[:, keep])[b.rows, where].float(), -1)

        def head():
            for b, h in zip(batches, hidden):
                torch.log_softmax(model.lm_head(h[b.rows, b.positions].unsqueeze(0))[0].float(), -1)

        rows.append(("head + log-softmax, former (every row at every kept position)", cpu_seconds(former_head, args.repeat)))
        rows.append(("head + log-softmax at the answer tokens only", cpu_seconds(head, args.repeat)))
    reference = [answer_log_probs(model, b) for b in batches]
    variant = [r.roll(1, 0) for r in reference]
    whole_kl = lambda r, v: (r.exp() * (r - v)).sum(-1).clamp_min(0.0)  # noqa: E731 - the former formula
    rows.append(("two KLs of a cell, former (whole arrays)", cpu_seconds(lambda: [whole_kl(r, v) + whole_kl(r, v) for r, v in zip(reference, variant)], args.repeat)))
    rows.append(("two KLs of a cell, 64 tokens at a time", cpu_seconds(lambda: [token_kl(r, v) + token_kl(r, v) for r, v in zip(reference, variant)], args.repeat)))
    whole = lambda: [answer_log_probs(model, b) for b in batches]  # noqa: E731
    rows.append(("whole pass (decoder, head, log-softmax)", cpu_seconds(whole, args.repeat)))
    holder, attribute, layers = decoder_layers(model, model.config.num_hidden_layers)
    cache = PrefixCache(model, layers, holder, attribute, batches, [15])
    rows.append((f"pass started at layer 15 of 30 from cached activations (bit-exact: {cache.exact})",
                 cpu_seconds(lambda: [cache.log_probs(i, 15) for i in range(len(batches))], args.repeat)))
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    rows.append(("whole pass, eager attention", cpu_seconds(whole, args.repeat)))
    model.set_attn_implementation(before)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        started = time.perf_counter()
        whole()
        rows.append((f"whole pass, wall seconds with {threads} thread(s)", time.perf_counter() - started))
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print("| part | seconds |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
