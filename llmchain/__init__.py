"""llmchain: a blockchain-anchored model registry and training ledger."""

__version__ = "0.1.0"
