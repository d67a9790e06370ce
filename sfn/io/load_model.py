"""Loading a whole `transformers` model (for generation and training) from any source sfn accepts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sfn.errors import SfnError
from sfn.io.pickle_reader import PICKLE_REFUSAL, pickle_files
from sfn.io.resolve import HUB_ID, resolve_hub_id


def resolve_model_path(source: str | os.PathLike) -> tuple[Path, str | None]:
    """(directory, gguf file name or None) for a directory, a `.gguf` file or a hub id."""
    text = str(source)
    path = Path(text).expanduser()
    if not path.exists():
        if HUB_ID.fullmatch(text):
            path = resolve_hub_id(text)
        else:
            raise SfnError(f"{text!r} is neither an existing file or directory nor a hub id like 'org/name'")
    if path.is_file():
        if path.suffix == ".gguf":
            return path.parent, path.name
        raise SfnError(f"{path}: a whole model loads from a directory or a .gguf file, not a single {path.suffix} file")
    ggufs = sorted(path.glob("*.gguf"))
    if not any(path.glob("*.safetensors")) and len(ggufs) == 1:
        return path, ggufs[0].name
    return path, None


def load_model(
    source: str | os.PathLike,
    *,
    dtype: Any = None,
    device: str | None = None,
    allow_pickle: bool = False,
    with_tokenizer: bool = True,
):
    """(model, tokenizer or None) from a model directory, a `.gguf` file or a hub id, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, gguf_file = resolve_model_path(source)
    if gguf_file is None and not any(directory.glob("*.safetensors")) and pickle_files(directory) and not allow_pickle:
        raise SfnError(PICKLE_REFUSAL.format(path=directory))
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype or "auto", **kwargs)
    if device:
        model = model.to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs) if with_tokenizer else None
    return model, tokenizer


def drop_gguf_mark(model: Any) -> None:
    """A GGUF file loads dequantized into ordinary float tensors but stays marked as quantized, which
    Trainer refuses to train and save_pretrained would record in config.json; drop the mark (call it
    before training or saving a model loaded from GGUF; a model without the mark is left as it is)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    method = str(getattr(getattr(model.config, "quantization_config", None), "quant_method", "unknown"))
    if "gguf" not in method.lower() or not all(p.is_floating_point() for p in model.parameters()):
        raise SfnError(f"the model is quantized ({method}); training and saving need full-precision tensors: load it unquantized")
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
