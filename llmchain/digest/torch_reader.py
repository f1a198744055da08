"""Read PyTorch ``.pt``/``.bin`` state dicts and turn torch tensors into canonical bytes.

Only this module imports torch, so digesting safetensors never pays for it. Files are loaded with
``weights_only=True`` (torch's restricted unpickler: no arbitrary code runs) and memory-mapped when
the file format allows, so a large checkpoint is not read into memory at once.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from llmchain.errors import BadInput

# torch dtype -> safetensors dtype name (the names the digest binds).
TORCH_DTYPES: dict[torch.dtype, str] = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ",
    torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
    torch.float8_e8m0fnu: "F8_E8M0",
    torch.uint16: "U16",
    torch.int16: "I16",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.uint32: "U32",
    torch.int32: "I32",
    torch.float32: "F32",
    torch.uint64: "U64",
    torch.int64: "I64",
    torch.float64: "F64",
    torch.complex64: "C64",
}


def tensor_bytes(tensor: torch.Tensor, where: str) -> tuple[str, tuple[int, ...], Any]:
    """(dtype name, shape, 1-D uint8 numpy view of the C-contiguous bytes) of a dense tensor."""
    dtype = TORCH_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise BadInput(f"{where}: dtype {tensor.dtype} has no safetensors name; convert it first")
    if tensor.layout != torch.strided:
        raise BadInput(f"{where}: {tensor.layout} tensors are not supported; convert to dense")
    dense = tensor.detach().cpu().resolve_conj().resolve_neg().contiguous()
    return dtype, tuple(dense.shape), dense.reshape(-1).view(torch.uint8).numpy()


def _load(path: Path) -> Any:
    with warnings.catch_warnings():  # torch warns about pickle protocols on stderr; errors say enough
        warnings.simplefilter("ignore", UserWarning)
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):  # legacy (non-zip) files cannot be mapped; load them plainly
                raise
            return torch.load(path, map_location="cpu", weights_only=True)


def load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A flat name -> tensor mapping from ``path``, or BadInput saying why it is not one."""
    try:
        loaded = _load(path)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "refused"
        raise BadInput(
            f"{path}: the pickle holds objects other than tensors ({reason[:200]}); "
            "only plain state dicts of tensors can be digested"
        ) from None
    except OSError as err:
        raise BadInput(f"{path}: cannot read: {err.strerror or err}") from None
    except Exception as err:  # torch.load fails on damaged files in many ways (zip, pickle, storage)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BadInput(f"{path}: not a readable PyTorch file (truncated or corrupt?): {first[:200]}") from None
    if not isinstance(loaded, Mapping):
        raise BadInput(f"{path}: holds a {type(loaded).__name__}, not a state dict (name -> tensor)")
    for name, value in loaded.items():
        if not isinstance(name, str):
            raise BadInput(f"{path}: key {name!r} is not a string; a state dict maps names to tensors")
        if not isinstance(value, torch.Tensor):
            raise BadInput(
                f"{path}: value at {name!r} is a {type(value).__name__}, not a tensor; "
                "pass a plain state dict (name -> tensor)"
            )
    return loaded
