"""Render an :class:`~llmchain.audit.AuditReport` as ``report.md`` with two figures.

The report is for a person who was asked "where did this model come from?": a verdict first (every
check, passed or failed, with its detail), then the lineage graph, runs and their provenance digests,
the loss curve and checkpoint timeline, releases, local files and replay results. Figures are drawn
with matplotlib's Agg backend, so no display is needed; the Markdown refers to them by relative path
so the directory can be moved or attached as a whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from llmchain.errors import BadInput  # noqa: E402

if TYPE_CHECKING:
    from llmchain.audit import AuditReport, LineageLink, RunHistory

REPORT_NAME = "report.md"
LOSS_CURVE_NAME = "loss-curve.png"
LINEAGE_NAME = "lineage.png"


def write_report(audit: AuditReport, out_dir: Path) -> Path:
    """Write ``report.md``, ``loss-curve.png`` and ``lineage.png`` into ``out_dir``; return the .md path.

    Each file is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written report that looks complete.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInput(f"cannot create report directory {out_dir}: {err.strerror}; pick another --report DIR") from err
    plot_loss_curve(audit.runs, out_dir / LOSS_CURVE_NAME)
    plot_lineage(audit.lineage, out_dir / LINEAGE_NAME)
    path = out_dir / REPORT_NAME
    _atomic_write(path, render_markdown(audit).encode())
    return path


def plot_loss_curve(runs: Sequence[RunHistory], path: Path) -> None:
    """Validation loss against step, one line per run; revoked checkpoints are marked with a red x."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    plotted = False
    for run in runs:
        points = [(c.step, c.val_loss) for c in run.checkpoints]
        if not points:
            continue
        steps, losses = zip(*points)
        ax.plot(steps, losses, marker="o", markersize=3, label=f"run {run.run_id}")
        revoked = [(c.step, c.val_loss) for c in run.checkpoints if c.status == "revoked"]
        if revoked:
            ax.scatter(*zip(*revoked), marker="x", color="red", s=60, zorder=3, label=f"run {run.run_id} revoked")
        plotted = True
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no checkpoints committed", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title("Validation loss of committed checkpoints")
    ax.grid(alpha=0.3)
    _save_figure(fig, path)


def plot_lineage(lineage: Sequence[LineageLink], path: Path) -> None:
    """Draw the lineage as layered boxes: parents above children, edges labelled with the relation.

    A green edge is a link whose parent checkpoint digest was found on the ledger under the parent
    model; a red edge failed that check. Depth is the number of ancestors, so a chain is a column and
    siblings spread sideways.
    """
    depth = _depths(lineage)
    layers: dict[int, list[str]] = {}
    for link in lineage:
        layers.setdefault(depth[link.model], []).append(link.model)
    position = {
        name: (col - (len(names) - 1) / 2, -row) for row, names in layers.items() for col, name in enumerate(names)
    }
    width = max((len(names) for names in layers.values()), default=1)
    fig, ax = plt.subplots(figsize=(max(4.0, 3.2 * width), max(2.5, 1.6 * len(layers))), dpi=100)
    for link in lineage:
        if link.parent is None or link.parent not in position:
            continue
        (x0, y0), (x1, y1) = position[link.parent], position[link.model]
        color = "tab:green" if link.verified else "tab:red"
        ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5})
        mark = "verified" if link.verified else "NOT verified"
        ax.text((x0 + x1) / 2 + 0.05, (y0 + y1) / 2, f"{link.relation}\n({mark})", fontsize=8, color=color)
    for name, (x, y) in position.items():
        ax.text(x, y, name, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "#eef3fb", "edgecolor": "#4a6fa5"})
    if not position:
        ax.text(0.5, 0.5, "no lineage", ha="center", va="center", transform=ax.transAxes)
    xs = [x for x, _ in position.values()] or [0.0]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(-len(layers) + 0.5, 0.5)
    ax.set_axis_off()
    ax.set_title("Model lineage")
    _save_figure(fig, path)


def render_markdown(audit: AuditReport) -> str:
    """The report's Markdown text (figures referenced by relative file name)."""
    verdict = "PASSED" if audit.ok else "FAILED"
    lines = [
        f"# Audit of `{audit.model}`",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by llmchain. Verdict: **{verdict}**.",
        "",
        "## Checks",
        "",
        *_table(["check", "result", "detail"],
                [[c.name, "pass" if c.ok else "**FAIL**", c.detail] for c in audit.checks]),
        "",
        "## Lineage",
        "",
        f"![lineage graph]({LINEAGE_NAME})",
        "",
        *_table(["model", "parent", "relation", "parent checkpoint", "verified"],
                [[l.model, l.parent or "—", l.relation or "—", _short(l.parent_weights),
                  "—" if l.parent is None else ("yes" if l.verified else f"**no**: {l.detail}")]
                 for l in audit.lineage]),
        "",
        "## Runs",
        "",
        *_table(["run", "status", "trainer", "config", "dataset", "code", "environment", "base checkpoint"],
                [[str(r.run_id), r.status, _short(r.trainer), _short(r.config), _short(r.dataset),
                  _short(r.code), _short(r.env), _short(r.base_checkpoint)] for r in audit.runs]),
        "",
        "## Checkpoint timeline",
        "",
        f"![validation loss]({LOSS_CURVE_NAME})",
        "",
    ]
    for run in audit.runs:
        lines += [f"### Run {run.run_id}", "",
                  f"On-chain hash-chain head `{run.head}`; recomputed from events `{run.recomputed_head}`.", ""]
        lines += _table(
            ["#", "step", "val loss", "weights", "committer", "time (UTC)", "status"],
            [[str(c.index), str(c.step), f"{c.val_loss:.4f}", _short(c.weights), _short(c.committer),
              _time(c.timestamp), c.status + (f": {c.reason}" if c.reason else "")] for c in run.checkpoints],
        )
        lines.append("")
    lines += ["## Releases", ""]
    lines += _table(
        ["label", "weights", "checkpoint", "status"],
        [[r.label, _short(r.weights), "—" if r.run_id is None else f"run {r.run_id} step {r.step}",
          r.status + (f": {r.reason}" if r.reason else "")] for r in audit.releases],
    )
    if audit.local:
        lines += ["", "## Local checkpoints", ""]
        lines += _table(["path", "status", "step", "detail"],
                        [[f"`{m.path}`", m.status, "—" if m.step is None else str(m.step), m.detail]
                         for m in audit.local])
    if audit.replay:
        lines += ["", "## Replay (proof of learning)", ""]
        lines += _table(
            ["run", "steps", "test", "result", "L2", "L∞", "tolerance", "detail"],
            [[str(s.run_id), f"{s.from_step}→{s.to_step}", s.test, "pass" if s.ok else "**FAIL**",
              f"{s.l2:.3g}", f"{s.linf:.3g}", "exact" if s.test == "exact" else f"{s.tolerance:.3g}", s.detail]
             for s in audit.replay],
        )
    return "\n".join(lines) + "\n"


def _depths(lineage: Sequence[LineageLink]) -> dict[str, int]:
    """Number of known ancestors of each model in ``lineage`` (a parent outside the list counts 0)."""
    parents = {link.model: link.parent for link in lineage}
    depth: dict[str, int] = {}
    for name in parents:
        seen, node, d = {name}, parents[name], 0
        while node is not None and node in parents and node not in seen:
            seen.add(node)
            node, d = parents[node], d + 1
        depth[name] = d
    return depth


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, or a line saying there is nothing to list."""
    if not rows:
        return ["(none)"]
    escape = [[cell.replace("|", "\\|").replace("\n", " ") for cell in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in escape)]


def _short(text: str | None) -> str:
    """A digest or address shortened to stay readable in a table (the JSON output keeps them whole)."""
    if not text:
        return "—"
    return f"`{text[:18]}…{text[-6:]}`" if len(text) > 28 else f"`{text}`"


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _save_figure(fig: plt.Figure, path: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
        os.replace(tmp.name, path)
    finally:
        plt.close(fig)


def _atomic_write(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
