"""Methods vLLM adds to each of its workers (`worker_extension_cls`), called through `collective_rpc`.

They run inside the engine's worker processes, next to the model: loading checkpoint tensors into the
running model (each worker takes its own shard under tensor parallelism) and hashing its weights.
"""

from __future__ import annotations

import hashlib

import torch


class WeightUpdateWorker:
    """Mixed into vLLM's worker class; `self.model_runner` is the worker's."""

    def sfn_load_weights(self, named: list[tuple[str, torch.Tensor]]) -> list[str]:
        """Load Hugging Face-named tensors; the model's own loader maps them onto its fused layers."""
        model = self.model_runner.model
        return sorted(model.load_weights(weights=iter(named)))

    def sfn_weight_digest(self) -> dict[str, str]:
        """sha256 of the bytes of every parameter and buffer this worker holds."""
        digests = {}
        for name, tensor in self.model_runner.model.state_dict().items():
            data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            digests[name] = hashlib.sha256(data.numpy().tobytes()).hexdigest()
        return digests
