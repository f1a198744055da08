"""Model cards: a card is a text document, so its digest is plain SHA-256 over the file's bytes.

Tensor digests (``llmchain.digest``) are for weights; a card has no tensors and no second writer
whose byte order could differ, so the file's bytes are the right thing to hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from llmchain.errors import BadInput
from llmchain.records import Digest

CARD_ALGORITHM = "sha256"


def card_digest(path: Path) -> Digest:
    """SHA-256 of a model card file, named ``sha256``."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(f"cannot read model card {path}: {error.strerror}") from None
    if not data:
        raise BadInput(f"model card {path} is empty; write a card or leave --card out")
    return Digest(CARD_ALGORITHM, hashlib.sha256(data).digest())
