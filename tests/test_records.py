"""Record validation and the on-chain encodings (fixed-point loss, bytes32 names)."""

from __future__ import annotations

import math

import pytest

from llmchain.errors import BadInput
from llmchain.records import (
    NO_VAL_LOSS,
    CheckpointSpec,
    Digest,
    Lineage,
    Relation,
    check_name,
    digest_from_chain,
    digest_to_chain,
    label_from_chain,
    label_to_chain,
    loss_from_chain,
    loss_to_chain,
)

VALUE = bytes(range(1, 33))


def test_digest_round_trips_through_chain_encoding() -> None:
    digest = Digest("tensor-sha256-v1", VALUE)
    algorithm, value = digest_to_chain(digest)
    assert algorithm == b"tensor-sha256-v1" + b"\0" * 16 and value == VALUE
    assert digest_from_chain(algorithm, value) == digest
    assert digest_to_chain(None) == (b"\0" * 32, b"\0" * 32) and digest_from_chain(*digest_to_chain(None)) is None
    assert str(digest) == "tensor-sha256-v1:" + VALUE.hex() and repr(digest).endswith(VALUE.hex() + ")")


@pytest.mark.parametrize(
    ("algorithm", "value", "message"),
    [
        ("sha256", b"\1" * 31, "32 non-zero bytes"),
        ("sha256", b"\0" * 32, "32 non-zero bytes"),
        ("SHA256", VALUE, "invalid digest algorithm name"),
        ("x" * 33, VALUE, "invalid digest algorithm name"),
        ("", VALUE, "invalid digest algorithm name"),
    ],
)
def test_bad_digests_are_bad_input(algorithm: str, value: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        Digest(algorithm, value)


def test_digest_from_hex() -> None:
    assert Digest.from_hex("sha256", "0x" + VALUE.hex()).value == VALUE
    assert Digest.from_hex("sha256", VALUE.hex().upper()).value == VALUE
    for bad in ("0x1234", "zz" * 32, VALUE.hex() + "00"):
        with pytest.raises(BadInput, match="malformed digest hex"):
            Digest.from_hex("sha256", bad)


def test_loss_fixed_point() -> None:
    assert loss_to_chain(2.5) == 2_500_000_000 and loss_from_chain(2_500_000_000) == 2.5
    assert loss_to_chain(None) == NO_VAL_LOSS and loss_from_chain(NO_VAL_LOSS) is None
    assert loss_to_chain(0) == 0
    assert abs(loss_from_chain(loss_to_chain(3.14159265358)) - 3.14159265358) <= 5e-10  # type: ignore[operator]
    for bad in (-0.1, math.nan, math.inf, 2e10, True, "1.0"):
        with pytest.raises(BadInput):
            loss_to_chain(bad)  # type: ignore[arg-type]


def test_checkpoint_spec_validates() -> None:
    weights = Digest("sha256", VALUE)
    with pytest.raises(BadInput, match="step"):
        CheckpointSpec(-1, weights)
    with pytest.raises(BadInput, match="step"):
        CheckpointSpec(2**64, weights)
    with pytest.raises(BadInput, match="validation loss"):
        CheckpointSpec(1, weights, val_loss=math.nan)


def test_names_and_labels() -> None:
    assert check_name("acme/tiny-gpt_v1.2") == "acme/tiny-gpt_v1.2"
    for bad in ("", "Acme", "a b", "a" * 65):
        with pytest.raises(BadInput, match="invalid model name"):
            check_name(bad)
    assert label_from_chain(label_to_chain("1.0.0+build.7")) == "1.0.0+build.7"
    for bad in ("", "1 0", "v" * 33, "é"):
        with pytest.raises(BadInput, match="invalid release label"):
            label_to_chain(bad)


def test_relations_and_lineage() -> None:
    assert Relation.parse("fine-tune") is Relation.FINE_TUNE and Relation.FINE_TUNE.label == "fine-tune"
    with pytest.raises(BadInput, match="use one of fine-tune, distill, quantize, merge, other"):
        Relation.parse("none")
    with pytest.raises(BadInput, match="needs a relation"):
        Lineage(Relation.NONE, 1)
    with pytest.raises(BadInput, match="parent model, a parent checkpoint digest, or both"):
        Lineage(Relation.DISTILL)
