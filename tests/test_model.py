"""The GPT model: shapes, causality, weight tying, config round trip, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from llmchain.model import GPT, TIED_WEIGHT, GPTConfig, load_weights, weights_of

MICRO = GPTConfig(block_size=16, vocab_size=256, n_layer=2, n_head=2, n_embd=32)


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(MICRO)


def test_forward_shapes_and_initial_loss_near_uniform() -> None:
    model = _model()
    idx = torch.randint(0, 256, (3, 16))
    with torch.no_grad():
        logits, loss = model(idx, torch.randint(0, 256, (3, 16)))
    assert logits.shape == (3, 16, 256)
    assert loss is not None and abs(loss.item() - math.log(256)) < 0.3
    assert model(idx)[1] is None


def test_attention_is_causal() -> None:
    model = _model().eval()
    a = torch.randint(0, 256, (1, 16))
    b = a.clone()
    b[0, 10:] = (b[0, 10:] + 1) % 256
    la, lb = model(a)[0], model(b)[0]
    assert torch.equal(la[0, :10], lb[0, :10])
    assert not torch.equal(la[0, 10:], lb[0, 10:])


def test_sequence_longer_than_block_is_rejected() -> None:
    with pytest.raises(AssertionError, match="block size"):
        _model()(torch.zeros(1, 17, dtype=torch.long))


def test_head_is_tied_and_stored_once() -> None:
    model = _model()
    assert model.lm_head.weight is model.transformer.wte.weight
    weights = weights_of(model)
    assert TIED_WEIGHT not in weights and "transformer.wte.weight" in weights
    assert model.num_params() == sum(v.numel() for v in weights.values())


def test_load_weights_round_trip_reties_head() -> None:
    source, target = _model(0), _model(1)
    load_weights(target, weights_of(source))
    assert target.lm_head.weight is target.transformer.wte.weight
    idx = torch.randint(0, 256, (2, 8))
    assert torch.equal(source.eval()(idx)[0], target.eval()(idx)[0])


def test_load_weights_rejects_missing_and_extra_tensors() -> None:
    weights = weights_of(_model())
    del weights["transformer.ln_f.weight"]
    with pytest.raises(ValueError, match="missing"):
        load_weights(_model(), weights)
    weights = {**weights_of(_model()), "extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unexpected"):
        load_weights(_model(), weights)


def test_config_round_trip_and_unknown_field() -> None:
    assert GPTConfig.from_dict(MICRO.to_dict()) == MICRO
    with pytest.raises(ValueError, match="unknown GPTConfig fields"):
        GPTConfig.from_dict({**MICRO.to_dict(), "n_experts": 8})


def test_generate_is_seeded_and_extends_past_block() -> None:
    model = _model().eval()
    prompt = torch.tensor([[100, 101]])
    out1 = model.generate(prompt, 20, top_k=10, generator=torch.Generator().manual_seed(7))
    out2 = model.generate(prompt, 20, top_k=10, generator=torch.Generator().manual_seed(7))
    assert out1.shape == (1, 22) and torch.equal(out1, out2)
    assert torch.equal(out1[:, :2], prompt)
