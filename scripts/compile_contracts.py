#!/usr/bin/env python3
"""Recompile contracts/ into llmchain/artifacts/*.json with the pinned solc (see llmchain/compiler.py).

    python3 dev.py run python scripts/compile_contracts.py
"""

from __future__ import annotations

from llmchain.compiler import compile_contracts, find_solc, write_artifacts


def main() -> None:
    solc = find_solc()
    for path in write_artifacts(compile_contracts(solc=solc)):
        print(f"wrote {path} (compiler: {solc})")


if __name__ == "__main__":
    main()
