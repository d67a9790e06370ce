"""Methods vLLM adds to each of its workers (`worker_extension_cls`), called through `collective_rpc`.

They run inside the engine's worker processes, next to the model. A weight update goes through the
worker's own in-place reload (`reload_weights`), which loads checkpoint-format tensors and redoes the
per-layer processing vLLM applied after the first load (on CPUs the linear layers' weights are
repacked for oneDNN and the plain tensors dropped, so copying into parameters would not reach them).
"""

from __future__ import annotations

import hashlib
import logging

import torch

# A partial update leaves every other layer as it was; vLLM's reload reports each of them as a
# warning ("Failed to load weights", "were not loaded from checkpoint"), dozens per variant switch.
RELOAD_LOGGERS = ("vllm.model_executor.model_loader.reload.layerwise", "vllm.model_executor.model_loader.reload.inplace")


class WeightUpdateWorker:
    """Mixed into vLLM's worker class; `self.model_runner` and `reload_weights` are the worker's."""

    def sfn_load_weights(self, path: str) -> None:
        """Load the Hugging Face-named tensors of a safetensors file into the running model (each
        worker takes its shard); a file, because the RPC channel does not carry tensors intact."""
        from safetensors.torch import load_file

        loggers = [logging.getLogger(name) for name in RELOAD_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            self.reload_weights(weights_iterator=list(load_file(path).items()), is_checkpoint_format=True)
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)

    def sfn_packed_modules(self) -> dict[str, list[str]]:
        """Which checkpoint modules vLLM fuses into one layer (qkv_proj: q_proj, k_proj, v_proj, ...)."""
        return {key: list(value) for key, value in getattr(self.model_runner.model, "packed_modules_mapping", {}).items()}

    def sfn_weight_digest(self) -> dict[str, str]:
        """sha256 of the bytes of every non-empty parameter and buffer this worker holds."""
        digests = {}
        for name, tensor in self.model_runner.model.state_dict().items():
            if tensor.numel():
                data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
                digests[name] = hashlib.sha256(data.numpy().tobytes()).hexdigest()
        return digests
