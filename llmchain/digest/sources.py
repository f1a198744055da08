"""Where tensors come from: a safetensors file, a PyTorch file, a directory of shards, memory.

Every source becomes a list of ``TensorSource`` (name, dtype, shape and a span of bytes), so the
digest never depends on the container. Directory rules (docs/digest.md): a ``*.index.json``
shard index if there is one (safetensors' preferred over PyTorch's, as Hugging Face repositories
often ship both), else every ``*.safetensors`` file, else every ``.pt``/``.bin``/``.pth`` file.
torch and numpy are imported only when a source needs them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

from llmchain.digest.hashing import Span
from llmchain.digest.safetensors_reader import SafetensorsFile
from llmchain.errors import BadInput

TORCH_SUFFIXES = (".pt", ".bin", ".pth")
MEMORY = "<memory>"

# numpy dtype (by name for extension types, else by kind and item size) -> safetensors name.
_NUMPY_BY_NAME = {
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
}
_NUMPY_BY_KIND = {
    ("b", 1): "BOOL",
    ("u", 1): "U8",
    ("i", 1): "I8",
    ("u", 2): "U16",
    ("i", 2): "I16",
    ("f", 2): "F16",
    ("u", 4): "U32",
    ("i", 4): "I32",
    ("f", 4): "F32",
    ("u", 8): "U64",
    ("i", 8): "I64",
    ("f", 8): "F64",
    ("c", 8): "C64",
}


class TensorSource(NamedTuple):
    """One tensor ready to hash; ``origin`` names its file for error messages."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    span: Span
    origin: str


def _safetensors(path: Path, stack: ExitStack) -> list[TensorSource]:
    file = SafetensorsFile(path)
    stack.callback(file.close)
    return [
        TensorSource(e.name, e.dtype, e.shape, Span(file.buffer, file.offset(e), e.end - e.begin), str(path))
        for e in file.entries
    ]


def _torch(path: Path) -> list[TensorSource]:
    from llmchain.digest import torch_reader

    sources = []
    for name, tensor in torch_reader.load_state_dict(path).items():
        dtype, shape, data = torch_reader.tensor_bytes(tensor, f"{path}: tensor {name!r}")
        sources.append(TensorSource(name, dtype, shape, Span(data, 0, data.nbytes), str(path)))
    return sources


def _tensor_file(path: Path, stack: ExitStack) -> list[TensorSource]:
    """A file that holds tensors itself (never an index: an index naming an index could loop)."""
    if path.suffix in TORCH_SUFFIXES:
        return _torch(path)
    if path.suffix == ".safetensors":
        return _safetensors(path, stack)
    raise BadInput(
        f"{path}: unknown model file type; expected .safetensors, .pt, .bin, .pth, "
        "a *.index.json shard index or a directory"
    )


def _file(path: Path, stack: ExitStack) -> list[TensorSource]:
    return _index(path, stack) if path.name.endswith(".index.json") else _tensor_file(path, stack)


def _merge(groups: Iterable[list[TensorSource]]) -> list[TensorSource]:
    """Concatenate sources, refusing a tensor name that two files both define."""
    seen: dict[str, str] = {}
    merged = []
    for sources in groups:
        for source in sources:
            if source.name in seen:
                raise BadInput(
                    f"tensor {source.name!r} appears in both {seen[source.name]} and {source.origin}; "
                    "shards must not repeat a tensor"
                )
            seen[source.name] = source.origin
            merged.append(source)
    return merged


def _weight_map(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise BadInput(f"{path}: cannot read: {err.strerror or err}") from None
    except (ValueError, RecursionError) as err:
        raise BadInput(f"{path}: shard index is not valid JSON ({err})") from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise BadInput(f'{path}: not a shard index: needs a "weight_map" object of tensor name -> file')
    return weight_map


def _index(path: Path, stack: ExitStack) -> list[TensorSource]:
    """Shards named by an index, each of which must hold exactly the tensors the index gives it."""
    by_shard: dict[str, set[str]] = {}
    for name, shard in _weight_map(path).items():
        by_shard.setdefault(shard, set()).add(name)
    groups = []
    for shard in sorted(by_shard):
        shard_path = path.parent / shard
        if Path(shard).name != shard or shard in {".", ".."}:
            raise BadInput(f"{path}: shard {shard!r} must be a file name in the index's directory")
        if not shard_path.exists() and not shard_path.is_symlink():
            raise BadInput(f"{path}: names shard {shard!r}, which does not exist in {path.parent}")
        sources = _tensor_file(shard_path, stack)
        held = {s.name for s in sources}
        if missing := sorted(by_shard[shard] - held):
            raise BadInput(f"{path}: says tensor {missing[0]!r} is in {shard}, but that shard lacks it")
        if extra := sorted(held - by_shard[shard]):
            raise BadInput(f"{shard_path}: holds tensor {extra[0]!r}, which the index does not list")
        groups.append(sources)
    return _merge(groups)


def _directory(path: Path, stack: ExitStack) -> list[TensorSource]:
    try:
        entries = sorted(path.iterdir())
    except OSError as err:
        raise BadInput(f"{path}: cannot list directory: {err.strerror or err}") from None
    indexes = [p for p in entries if p.name.endswith(".safetensors.index.json")] or [
        p for p in entries if p.name.endswith(".index.json")
    ]
    if len(indexes) > 1:
        names = ", ".join(p.name for p in indexes)
        raise BadInput(f"{path}: several shard indexes ({names}); pass the one to digest")
    if indexes:
        return _index(indexes[0], stack)
    files = [p for p in entries if p.suffix == ".safetensors"] or [
        p for p in entries if p.suffix in TORCH_SUFFIXES
    ]
    if not files:
        raise BadInput(f"{path}: no .safetensors, .pt, .bin or .pth files and no *.index.json here")
    return _merge(_tensor_file(f, stack) for f in files)


def open_path(path: Path, stack: ExitStack) -> list[TensorSource]:
    """Every tensor of the model at ``path``; open files are closed when ``stack`` unwinds."""
    try:
        is_dir = path.is_dir()
        exists = is_dir or path.exists()
    except OSError as err:
        raise BadInput(f"{path}: cannot read: {err.strerror or err}") from None
    if not exists:
        reason = "symlink loop or broken link" if path.is_symlink() else "no such file or directory"
        raise BadInput(f"{path}: {reason}")
    return _directory(path, stack) if is_dir else _file(path, stack)


def _numpy_bytes(array: Any, where: str) -> tuple[str, tuple[int, ...], Any]:
    import numpy as np

    dtype = _NUMPY_BY_NAME.get(array.dtype.name) or _NUMPY_BY_KIND.get(
        (array.dtype.kind, array.dtype.itemsize)
    )
    if dtype is None:
        raise BadInput(f"{where}: numpy dtype {array.dtype} has no safetensors name")
    if array.dtype.byteorder == ">":  # the digest binds little-endian bytes
        array = array.astype(array.dtype.newbyteorder("<"))
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return dtype, tuple(array.shape), data


def _is_instance(value: Any, module: str, cls: str) -> bool:
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(value, getattr(loaded, cls))


def from_mapping(state_dict: Mapping[str, Any]) -> list[TensorSource]:
    """Sources for an in-memory state dict of torch tensors and/or numpy arrays."""
    sources = []
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise BadInput(f"state dict key {name!r} is not a string")
        where = f"state dict: tensor {name!r}"
        if _is_instance(value, "torch", "Tensor"):
            from llmchain.digest import torch_reader

            dtype, shape, data = torch_reader.tensor_bytes(value, where)
        elif _is_instance(value, "numpy", "ndarray"):
            dtype, shape, data = _numpy_bytes(value, where)
        else:
            raise BadInput(f"{where} is a {type(value).__name__}, not a torch tensor or numpy array")
        sources.append(TensorSource(name, dtype, shape, Span(data, 0, data.nbytes), MEMORY))
    return sources
