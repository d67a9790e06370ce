"""Stored bits and their decoding, without torch, against torch's own conversions."""

import numpy as np
import pytest
import torch

from sfn.io.checkpoint import TensorInfo
from sfn.io.dtypes import ITEMSIZE, SAFETENSORS_CODES, dtype_name, tensor_bits, to_float32, torch_dtype


def every_value(dtype: torch.dtype) -> torch.Tensor:
    """Every bit pattern of a 1- or 2-byte dtype; a spread of values (and the specials) otherwise."""
    if dtype.itemsize <= 2 and dtype.is_floating_point:
        width = {1: torch.uint8, 2: torch.int16}[dtype.itemsize]
        low, high = (0, 256) if dtype.itemsize == 1 else (-(2**15), 2**15)
        return torch.arange(low, high, dtype=torch.int32).to(width).view(dtype)
    if dtype == torch.bool:
        return torch.tensor([True, False, True])
    values = torch.tensor([0.0, -0.0, 1.0, -3.5, 1e-30, 3e38, 65504.0, float("inf"), float("-inf"), float("nan")], dtype=torch.float64)
    if dtype.is_floating_point:
        return values.to(dtype)
    info = torch.iinfo(dtype)
    return torch.tensor([0, 1, info.min, min(info.max, 2**63 - 1), 12345 % info.max], dtype=dtype)


@pytest.mark.parametrize("name", sorted(ITEMSIZE))
def test_decoded_bits_equal_torchs_float32_conversion_bit_for_bit(name):
    tensor = every_value(torch_dtype(name))
    bits = tensor_bits(tensor)
    assert bits.dtype.itemsize == ITEMSIZE[name] == tensor.dtype.itemsize and bits.shape == tuple(tensor.shape)
    decoded = to_float32(bits, name)
    expected = tensor.to(torch.float32).numpy()
    assert decoded.dtype == np.float32
    # bit for bit, NaNs included (float32 NaN payloads are what torch produces too)
    np.testing.assert_array_equal(np.isnan(decoded), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(decoded[finite].view(np.uint32), expected[finite].view(np.uint32))


def test_every_safetensors_code_names_a_torch_dtype_of_its_size():
    for code, name in SAFETENSORS_CODES.items():
        assert torch_dtype(name).itemsize == ITEMSIZE[name], code
        assert dtype_name(torch_dtype(name)) == name


def test_a_dtype_outside_the_table_is_kept_with_torchs_size():
    # a loaded model or state dict may hold one (a complex rotary buffer): read as before, not refused
    info = TensorInfo("rotary.freqs", (2,), torch.complex64)
    assert (info.dtype_name, info.itemsize, info.nbytes, info.dtype) == ("complex64", 8, 16, torch.complex64)
    with pytest.raises(ValueError, match="no torch dtype"):
        torch_dtype("float7")
