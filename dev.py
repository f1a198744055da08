#!/usr/bin/env python3
"""Set up a pinned environment and run one of the project's jobs.

    python3 dev.py train [ARGS...]   # the main job: train a GPT with on-chain commits
    python3 dev.py test [ARGS...]    # the whole test suite (pytest)
    python3 dev.py run CMD [ARGS...] # any command inside the environment, e.g. scripts/bench_gas.py

Needs only Python 3.10+ and Node/npm. It creates ``.venv`` (Python packages pinned in
requirements.lock) and ``tools/node_modules`` (solc-js and anvil pinned in tools/package-lock.json),
and skips both installs when their lock files have not changed since the last run (a stamp file
records each lock's hash), so re-running is fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TOOLS = ROOT / "tools"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def _up_to_date(stamp: Path, digest: str) -> bool:
    return stamp.exists() and stamp.read_text().strip() == digest


def _run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def ensure_python_env() -> None:
    """Create the venv and install the pinned packages unless the lock is unchanged."""
    stamp = VENV / ".bootstrap-stamp"
    digest = _digest(ROOT / "requirements.lock", ROOT / "pyproject.toml")
    if _up_to_date(stamp, digest):
        return
    if not (BIN / "python").exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-q", "-r", str(ROOT / "requirements.lock")])
    # compat mode puts the checkout on sys.path with a plain .pth line: no import-hook finder,
    # which would add ~15 ms to every `llmchain` start.
    _run([*pip, "install", "-q", "--no-deps", "--no-build-isolation",
          "--config-settings", "editable_mode=compat", "-e", str(ROOT)])
    stamp.write_text(digest)


def ensure_node_tools() -> None:
    """Install solc-js and anvil from the npm lock file unless it is unchanged."""
    stamp = TOOLS / "node_modules" / ".bootstrap-stamp"
    digest = _digest(TOOLS / "package-lock.json")
    if _up_to_date(stamp, digest):
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("dev.py: npm is not on PATH; install Node.js 18+ with npm and run again.")
    _run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(TOOLS)])
    stamp.write_text(digest)


def compile_sources() -> None:
    """Byte-compile the package (only files changed since the last run are recompiled).

    With PYTHONDONTWRITEBYTECODE set, as on some machines, an editable install would otherwise
    recompile every module on every `llmchain` start (about 10 ms of a 60 ms `llmchain digest`).
    """
    subprocess.run([str(BIN / "python"), "-m", "compileall", "-q", str(ROOT / "llmchain")], check=True)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):
        sys.exit("dev.py: llmchain needs Python 3.10 or newer.")
    if not argv or argv[0] not in {"train", "test", "run"}:
        print(__doc__, file=sys.stderr)
        return 2
    job, rest = argv[0], argv[1:]
    ensure_python_env()
    ensure_node_tools()
    compile_sources()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if job == "train":
        cmd = [str(BIN / "llmchain"), "train", *rest]
    elif job == "test":
        cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    else:
        if not rest:
            sys.exit("dev.py run: name a command, e.g. python3 dev.py run python scripts/bench_gas.py")
        cmd = rest
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
