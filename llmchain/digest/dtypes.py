"""Tensor element types, named as safetensors names them, with their sizes in bytes.

The digest binds a dtype by this name, so a tensor keeps its digest whichever library wrote or
holds it: torch and numpy types are mapped onto these names (in ``torch_reader`` and ``sources``).
Sub-byte types (safetensors' F4, F6_*) pack several elements per byte and are not supported yet:
their byte layout is not fixed by shape alone.
"""

from __future__ import annotations

from llmchain.errors import BadInput

# safetensors dtype name -> bytes per element.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
    "C64": 8,
}


def dtype_size(dtype: str, where: str) -> int:
    """Bytes per element of ``dtype``; ``where`` names the file and tensor for the error message."""
    size = DTYPE_SIZES.get(dtype)
    if size is None:
        supported = ", ".join(DTYPE_SIZES)
        raise BadInput(f"{where}: unknown or unsupported dtype {dtype!r}; supported: {supported}")
    return size


def expected_nbytes(shape: tuple[int, ...], dtype: str, where: str) -> int:
    """Byte length of a C-contiguous tensor of ``shape`` and ``dtype``."""
    count = 1
    for dim in shape:
        count *= dim
    return count * dtype_size(dtype, where)
