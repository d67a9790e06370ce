"""The multi-process path: two CPU processes (gloo) under `accelerate launch` with the shipped DDP and
FSDP configs, and the shipped DeepSpeed ZeRO-3 config as accelerate (and DeepSpeed, if installed) reads it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "accelerate"


def _config(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(CONFIGS / name))


def test_shipped_accelerate_configs() -> None:
    zero3 = _config("deepspeed_zero3.yaml")
    assert zero3.distributed_type == "DEEPSPEED" and zero3.deepspeed_config["zero_stage"] == 3
    fsdp = _config("fsdp.yaml")
    # mixed requires_grad inside one wrapped decoder layer needs the original parameters kept (FSDP1)
    assert fsdp.distributed_type == "FSDP" and fsdp.fsdp_config["fsdp_use_orig_params"] is True
    assert _config("ddp.yaml").num_processes == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What the shipped FSDP config needs changed to run on CPU processes, and why: bf16 mixed precision
# is a GPU setting; cpu_ram_efficient_loading forces sync_module_states, and accelerate's FSDP plugin
# then asks for an accelerator's current device ("There are currently no available devices found,
# must be one of 'XPU', 'CUDA', ..."), which a CPU process does not have.
FSDP_ON_CPU = ["--mixed_precision", "no", "--fsdp_cpu_ram_efficient_loading", "false", "--fsdp_sync_module_states", "false"]


def _launch(config: str, overrides: list[str], base: Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config), *overrides,
        "--main_process_port", str(_free_port()), "-m", "sfn.stethoscopes.freeze.cli", str(base), "--train", "emb+head+o",
        "--data", str(data), "--out", str(out), "--max-steps", "3", "--save-steps", "2", "--batch-size", "2",
        "--seq-len", "256", "--heldout", "4", "--lr", "1e-2", "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_ddp_and_fsdp_on_two_cpu_processes_train_the_selection_alike_and_resume(
    tiny_freeze_model, reasoning_data: Path, tmp_path: Path
) -> None:
    base = tiny_freeze_model("llama")
    _launch("fsdp.yaml", FSDP_ON_CPU, base, reasoning_data, tmp_path / "fsdp")
    ddp = _launch("ddp.yaml", [], base, reasoning_data, tmp_path / "ddp")
    assert ddp.stdout.count("trained ") == 1  # only the main process reports
    ddp_metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp_metrics["processes"] == 2 and ddp_metrics["effective_batch"] == 4 and ddp_metrics["steps"] == 3
    assert ddp_metrics["frozen_with_grad"] == [] and ddp_metrics["frozen_with_optimizer_state"] == []
    assert ddp_metrics["heldout_loss"] < ddp_metrics["heldout_loss_before"]
    metrics = json.loads((tmp_path / "fsdp" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == 3
    assert metrics["frozen_with_grad"] == [] and metrics["frozen_with_optimizer_state"] == []
    before = load_file(base / "model.safetensors")
    sharded = load_file(tmp_path / "fsdp" / "model" / "model.safetensors")
    unsharded = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    trained = {name for name in before if any(k in name for k in ("embed_tokens", "lm_head", "o_proj", "norm"))}
    assert set(sharded) == set(before)
    for name in before:
        assert torch.equal(before[name], unsharded[name]) != (name in trained), name
        assert torch.equal(before[name], sharded[name]) != (name in trained), name
        # the same run with whole copies of the model in each process (DDP) writes the same model
        torch.testing.assert_close(sharded[name], unsharded[name], rtol=0, atol=1e-6)

    # Resume the sharded run from its step-2 checkpoint, as after a crash before step 3 finished.
    run = tmp_path / "fsdp"
    first_losses = (run / "loss.csv").read_text().splitlines()
    shutil.rmtree(run / "checkpoints" / "checkpoint-3")
    shutil.rmtree(run / "model")
    _launch("fsdp.yaml", FSDP_ON_CPU, base, reasoning_data, run)
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["resumed_from"] == "checkpoint-2" and resumed["steps"] == 3
    assert resumed["frozen_with_grad"] == [] and resumed["heldout_loss"] < metrics["heldout_loss_before"]
    after = load_file(run / "model" / "model.safetensors")
    for name in before:
        assert torch.equal(before[name], after[name]) != (name in trained), name
    # Steps 1-2 come from the checkpoint's log; step 3 is trained again. It is not the same step 3 as
    # in the uninterrupted run: on 2 processes (DDP as well as FSDP) the resumed data loader hands out
    # other examples for it, so the resumed model is compared with the selection, not bit for bit.
    losses = (run / "loss.csv").read_text().splitlines()
    assert losses[:3] == first_losses[:3] and len(losses) == 4


@pytest.mark.slow
def test_zero3_config_passes_deepspeeds_schema() -> None:
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (PyPI has only its sdist: DS_BUILD_OPS=0 pip install deepspeed)")
    from accelerate.utils import DeepSpeedPlugin
    from deepspeed.runtime.config import DeepSpeedConfig

    settings = _config("deepspeed_zero3.yaml").deepspeed_config
    plugin = DeepSpeedPlugin(**{key: settings[key] for key in (
        "zero_stage", "zero3_init_flag", "zero3_save_16bit_model", "offload_optimizer_device", "offload_param_device")})
    # Trainer fills the "auto" values from its arguments (batch size, accumulation, clipping) at launch.
    filled = json.loads(json.dumps(plugin.deepspeed_config).replace('"auto"', "1"))
    checked = DeepSpeedConfig(filled)
    assert checked.zero_optimization_stage == 3 and checked.zero_config.gather_16bit_weights_on_model_save
    assert checked.zero_config.offload_param is None or checked.zero_config.offload_param.device == "none"
