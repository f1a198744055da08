"""Format independence: one set of tensors, every container, one digest; and every bad container."""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

from digest_helpers import header_for, write_raw
from llmchain.digest import ModelDigest, digest_path, digest_state_dict, digest_tensor
from llmchain.errors import BadInput

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2, torch.int64, torch.bool, torch.uint8]


def sample_model(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        "transformer.h.0.attn.weight": torch.randn(8, 4, generator=generator),
        "transformer.h.0.mlp.bias": torch.randn(6, generator=generator).to(torch.bfloat16),
        "transformer.h.1.attn.weight": torch.randn(3, 3, generator=generator).to(torch.float16),
        "lm_head.fp8": torch.randn(5, generator=generator).to(torch.float8_e4m3fn),
        "lm_head.e5m2": torch.randn(2, 2, generator=generator).to(torch.float8_e5m2),
        "mask": torch.tensor([True, False, True]),
        "step": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 3),
        "nan": torch.tensor([float("nan"), 1.0]),
    }
    return tensors


def shard(tensors: dict[str, torch.Tensor], directory: Path, parts: int, *, index: bool = True) -> Path:
    directory.mkdir()
    names = list(tensors)
    weight_map = {}
    for part in range(parts):
        file = f"model-{part + 1:05d}-of-{parts:05d}.safetensors"
        chunk = {n: tensors[n] for n in names[part::parts]}
        save_file(chunk, str(directory / file), metadata={"shard": str(part)})
        weight_map.update({n: file for n in chunk})
    if index:
        (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return directory


def test_every_container_gives_the_same_digest(tmp_path: Path) -> None:
    tensors = sample_model()
    expected = digest_state_dict(tensors)
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"a": "1", "b": "2"})
    torch.save(tensors, tmp_path / "model.pt")
    legacy = {n: t for n, t in tensors.items() if not t.dtype.is_floating_point or t.dtype.itemsize > 1}
    torch.save(legacy, tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    numpy_side = {n: t.numpy() for n, t in tensors.items() if t.dtype not in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2)}
    mixed = {**tensors, **numpy_side}
    paths = [
        tmp_path / "model.safetensors",
        tmp_path / "model.pt",
        shard(tensors, tmp_path / "sharded", 3),
        tmp_path / "sharded" / "model.safetensors.index.json",
        shard(tensors, tmp_path / "no-index", 2, index=False),
    ]
    for path in paths:
        assert digest_path(path) == expected, path
    assert digest_state_dict(mixed) == expected
    assert digest_path(tmp_path / "legacy.bin") == digest_state_dict(legacy)  # pre-zip torch.save format
    assert len(expected.tensors) == len(tensors)


def test_views_and_non_contiguous_tensors_digest_their_logical_bytes() -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    transposed = base.t()
    sliced = base[1:3, ::2]
    assert digest_state_dict({"x": transposed}) == digest_state_dict({"x": transposed.contiguous()})
    assert digest_state_dict({"x": sliced}) == digest_state_dict({"x": sliced.clone()})
    assert digest_state_dict({"x": np.asfortranarray(base.numpy())}) == digest_state_dict({"x": base})
    big_endian = base.numpy().astype(">f4")
    assert digest_state_dict({"x": big_endian}) == digest_state_dict({"x": base})


def test_numpy_and_torch_agree_on_every_shared_dtype() -> None:
    for dtype in (np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float16, np.float32, np.float64, np.complex64):
        array = (np.arange(6) % 2).astype(dtype).reshape(2, 3)
        assert digest_state_dict({"t": array}) == digest_state_dict({"t": torch.from_numpy(array)}), dtype


def test_numpy_written_safetensors_matches(tmp_path: Path) -> None:
    arrays = {"a": np.arange(5, dtype=np.int32), "b": np.ones((2, 2), dtype=np.float64)}
    save_numpy(arrays, str(tmp_path / "np.safetensors"))
    assert digest_path(tmp_path / "np.safetensors") == digest_state_dict(arrays)


names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8).filter(lambda n: n != "__metadata__")
tensor_specs = st.dictionaries(
    names,
    st.tuples(st.sampled_from(range(len(DTYPES))), st.lists(st.integers(0, 3), max_size=3), st.integers(0, 2**31)),
    max_size=6,
)


def build(specs: dict[str, tuple[int, list[int], int]]) -> dict[str, torch.Tensor]:
    out = {}
    for name, (dtype_index, shape, seed) in specs.items():
        count = int(np.prod(shape)) if shape else 1
        if count == 0:
            out[name] = torch.empty(shape, dtype=DTYPES[dtype_index])
            continue
        raw = np.random.default_rng(seed).integers(0, 256, size=count * DTYPES[dtype_index].itemsize, dtype=np.uint8)
        out[name] = torch.from_numpy(raw).view(DTYPES[dtype_index]).reshape(shape)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tensor_specs, st.randoms(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=4))
def test_order_metadata_and_format_do_not_matter(tmp_path: Path, specs: dict, rnd: random.Random, metadata: dict) -> None:
    tensors = build(specs)
    expected = digest_state_dict(tensors)
    keys = list(tensors)
    rnd.shuffle(keys)
    shuffled = {k: tensors[k] for k in keys}
    assert digest_state_dict(shuffled) == expected
    path = tmp_path / f"m{rnd.random()}.safetensors"
    save_file(shuffled, str(path), metadata=metadata or None)
    assert digest_path(path) == expected
    path.unlink()


@settings(max_examples=60, deadline=None)
@given(tensor_specs.filter(bool), st.data())
def test_any_single_mutation_changes_the_digest(specs: dict, data: st.DataObject) -> None:
    tensors = build(specs)
    before = digest_state_dict(tensors)
    name = data.draw(st.sampled_from(sorted(tensors)))
    tensor = tensors[name]
    mutation = data.draw(st.sampled_from(["byte", "name", "dtype", "shape"]))
    changed = dict(tensors)
    if mutation == "byte":
        if tensor.numel() == 0:
            return
        raw = tensor.reshape(-1).view(torch.uint8).clone()
        position = data.draw(st.integers(0, raw.numel() - 1))
        raw[position] ^= 1 << data.draw(st.integers(0, 7))
        changed[name] = raw.view(tensor.dtype).reshape(tensor.shape)
    elif mutation == "name":
        del changed[name]
        new = data.draw(names.filter(lambda n: n not in tensors))
        changed[new] = tensor
    elif mutation == "dtype":
        other = data.draw(st.sampled_from([d for d in DTYPES if d.itemsize == tensor.dtype.itemsize and d != tensor.dtype] or [None]))
        if other is None:
            return
        changed[name] = tensor.view(other)
    else:
        reshaped = tensor.reshape(-1) if tensor.dim() != 1 else tensor.reshape(1, -1)
        changed[name] = reshaped
    after = digest_state_dict(changed)
    assert after.root != before.root


def test_digest_tensor_hashes_one_tensor(tmp_path: Path) -> None:
    tensors = sample_model()
    directory = shard(tensors, tmp_path / "s", 2)
    expected = digest_state_dict(tensors)
    for leaf in expected.tensors:
        assert digest_tensor(directory, leaf.name) == leaf
    with pytest.raises(BadInput, match="no tensor named 'missing'"):
        digest_tensor(directory, "missing")


# ---------------------------------------------------------------- bad containers


def bad(path: Path, match: str) -> str:
    with pytest.raises(BadInput, match=match) as caught:
        digest_path(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_path_and_unknown_suffix(tmp_path: Path) -> None:
    bad(tmp_path / "nope.safetensors", "no such file or directory")
    (tmp_path / "weights.gguf").write_bytes(b"GGUF")
    bad(tmp_path / "weights.gguf", "unknown model file type")
    (tmp_path / "empty").mkdir()
    bad(tmp_path / "empty", "no .safetensors, .pt, .bin or .pth files")


def test_duplicate_tensor_across_shards(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    save_file({"w": torch.ones(2)}, str(tmp_path / "d" / "a.safetensors"))
    save_file({"w": torch.ones(2), "v": torch.ones(1)}, str(tmp_path / "d" / "b.safetensors"))
    message = bad(tmp_path / "d", "tensor 'w' appears in both")
    assert "a.safetensors" in message and "b.safetensors" in message


def test_index_errors(tmp_path: Path) -> None:
    directory = shard(sample_model(), tmp_path / "s", 2)
    index = directory / "model.safetensors.index.json"
    document = json.loads(index.read_text())
    document["weight_map"]["ghost"] = "model-00009-of-00009.safetensors"
    index.write_text(json.dumps(document))
    bad(directory, "names shard 'model-00009-of-00009.safetensors', which does not exist")
    del document["weight_map"]["ghost"]
    document["weight_map"]["ghost"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(document))
    bad(directory, "says tensor 'ghost' is in model-00001-of-00002.safetensors, but that shard lacks it")
    del document["weight_map"]["ghost"]
    del document["weight_map"]["mask"]
    index.write_text(json.dumps(document))
    bad(directory, "holds tensor 'mask', which the index does not list")
    document["weight_map"]["mask"] = "../escape.safetensors"
    index.write_text(json.dumps(document))
    bad(directory, "must be a file name in the index's directory")
    document["weight_map"]["mask"] = "model-00002-of-00002.safetensors"
    document["weight_map"]["ghost"] = index.name  # an index naming itself must not recurse
    index.write_text(json.dumps(document))
    bad(directory, "model.safetensors.index.json: unknown model file type")
    index.write_text("{")
    bad(index, "shard index is not valid JSON")
    index.write_text('{"weight_map": [1]}')
    bad(index, 'needs a "weight_map" object')


def test_symlink_loops(tmp_path: Path) -> None:
    directory = tmp_path / "loop"
    directory.mkdir()
    os.symlink(directory / "b.safetensors", directory / "a.safetensors")
    os.symlink(directory / "a.safetensors", directory / "b.safetensors")
    bad(directory, "a.safetensors: cannot read")
    bad(directory / "a.safetensors", "symlink loop or broken link")
    os.symlink(directory, directory / "self")
    (directory / "a.safetensors").unlink()
    (directory / "b.safetensors").unlink()
    save_file({"w": torch.ones(1)}, str(directory / "m.safetensors"))
    assert digest_path(directory) == digest_state_dict({"w": torch.ones(1)})


class NotATensor:
    pass


def test_pickles_with_other_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "obj": NotATensor()}, path)
    bad(path, "the pickle holds objects other than tensors")
    path.write_bytes(pickle.dumps({"w": 1}))
    bad(path, "not a readable PyTorch file|objects other than tensors")
    torch.save({"w": torch.ones(1), "step": 3}, path)
    bad(path, "value at 'step' is a int, not a tensor")
    torch.save({"model": {"w": torch.ones(1)}}, path)
    bad(path, "value at 'model' is a dict")
    torch.save([torch.ones(1)], path)
    bad(path, "holds a list, not a state dict")


def test_truncated_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    bad(path, "not a readable PyTorch file")


def test_in_memory_bad_values() -> None:
    with pytest.raises(BadInput, match="is a list, not a torch tensor or numpy array"):
        digest_state_dict({"w": [1, 2]})
    with pytest.raises(BadInput, match="key 3 is not a string"):
        digest_state_dict({3: torch.ones(1)})
    with pytest.raises(BadInput, match="has no safetensors name"):
        digest_state_dict({"q": torch.ones(2, dtype=torch.complex128)})
    with pytest.raises(BadInput, match="has no safetensors name"):
        digest_state_dict({"s": np.array(["a"])})


def test_truncated_safetensors_in_a_directory(tmp_path: Path) -> None:
    header, data = header_for({"w": ("F32", [4], bytes(16))})
    write_raw(tmp_path / "m.safetensors", header, data[:10])
    bad(tmp_path, "truncated: tensor 'w'")


def test_empty_model_digest_is_the_empty_root(tmp_path: Path) -> None:
    save_file({}, str(tmp_path / "e.safetensors"))
    empty = digest_path(tmp_path / "e.safetensors")
    assert empty == digest_state_dict({}) == ModelDigest.from_leaves([])
    assert empty.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
