"""``python -m llmchain`` runs the CLI."""

from llmchain.cli import main

main()
