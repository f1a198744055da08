"""Render an :class:`~llmchain.audit.AuditReport` as ``report.md`` with two figures.

The report is for a person who was asked "where did this model come from?": a verdict first (every
check, passed or failed, with its detail), then the lineage graph, runs and their provenance digests,
the loss curve and checkpoint timeline, releases, local files and replay results. Figures are drawn
on matplotlib Figures with an explicit Agg canvas (no pyplot, no global backend switch), so no
display is needed and an importing notebook keeps its own backend. The Markdown refers to the
figures by relative path, so the directory can be moved or attached as a whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmchain.errors import BadInput
from llmchain.records import Digest, Status

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
    text = render_markdown(audit).encode()
    _atomic_write(path, lambda handle: handle.write(text))
    return path


def plot_loss_curve(runs: Sequence[RunHistory], path: Path) -> None:
    """Validation loss against step, one line per run; revoked checkpoints are marked with a red x."""
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    plotted = False
    for history in runs:
        points = [(c.step, c.val_loss) for c in history.checkpoints if c.val_loss is not None]
        if not points:
            continue
        ax.plot(*zip(*points), marker="o", markersize=3, label=f"run {history.run.id}")
        revoked = [(c.step, c.val_loss) for c in history.checkpoints if c.status is Status.REVOKED and c.val_loss is not None]
        if revoked:
            steps, losses = zip(*revoked)
            ax.scatter(steps, losses, marker="x", color="red", s=60, zorder=3, label=f"run {history.run.id} revoked")
        plotted = True
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation losses committed", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title("Validation loss of committed checkpoints")
    ax.grid(alpha=0.3)
    _save_figure(fig, path)


def plot_lineage(lineage: Sequence[LineageLink], path: Path) -> None:
    """Draw the lineage root-first, top to bottom: one box per model, edges labelled with the relation.

    A green edge is a parent link whose checkpoint digest was found on the ledger under the parent
    model; a red edge failed that check; a grey one could not be checked (external parent weights).
    """
    names = [link.model.name for link in lineage]
    fig = Figure(figsize=(6, max(2.0, 1.4 * len(names))), dpi=100)
    ax = fig.subplots()
    for row, link in enumerate(lineage):
        y = -row
        if link.model.parent is not None:
            color = {True: "tab:green", False: "tab:red", None: "tab:gray"}[link.verified]
            parent = link.parent.name if link.parent else f"external {_short(str(link.model.parent.checkpoint))}"
            if row == 0:  # the parent is not a registered model: draw it as a plain label above
                ax.text(0, 0.9, parent, ha="center", va="center", fontsize=8, color="tab:gray")
            ax.annotate("", xy=(0, y + 0.2), xytext=(0, y + 0.75), arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5})
            mark = {True: "verified", False: "NOT verified", None: "not verifiable"}[link.verified]
            ax.text(0.05, y + 0.47, f"{link.model.parent.relation.label} ({mark})", fontsize=8, color=color, va="center")
        ax.text(0, y, link.model.name, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "#eef3fb", "edgecolor": "#4a6fa5"})
    ax.set_xlim(-1, 1)
    ax.set_ylim(-len(names) + 0.5, 1.2)
    ax.set_axis_off()
    ax.set_title("Model lineage (parents above)")
    _save_figure(fig, path)


def render_markdown(audit: AuditReport) -> str:
    """The report's Markdown text (figures referenced by relative file name)."""
    verdict = "PASSED" if audit.ok else "FAILED"
    lines = [
        f"# Audit of `{audit.model.name}`",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by llmchain. Verdict: **{verdict}**.",
        "",
        "## Checks",
        "",
        *_table(["check", "result", "detail"], [[c.name, "pass" if c.ok else "**FAIL**", c.detail] for c in audit.checks]),
        "",
        "## Lineage",
        "",
        f"![lineage graph]({LINEAGE_NAME})",
        "",
        *_table(
            ["model", "parent", "relation", "parent checkpoint", "verified", "detail"],
            [[link.model.name, link.parent.name if link.parent else "—",
              link.model.parent.relation.label if link.model.parent else "—",
              _digest(link.model.parent.checkpoint if link.model.parent else None),
              {True: "yes", False: "**no**", None: "—"}[link.verified], link.detail]
             for link in audit.lineage],
        ),
        "",
        "## Runs",
        "",
        *_table(
            ["run", "status", "trainer", "checkpoints", "config", "dataset", "code", "environment", "base checkpoint"],
            [[str(h.run.id), h.run.status.name.lower(), _short(h.run.trainer), str(h.run.checkpoint_count),
              _digest(h.run.spec.config_digest), _digest(h.run.spec.dataset_digest),
              _digest(h.run.spec.code_digest), _digest(h.run.spec.env_digest),
              _digest(h.run.spec.base_checkpoint)]
             for h in audit.runs],
        ),
        "",
        *_run_records(audit),
        "## Checkpoint timeline",
        "",
        f"![validation loss]({LOSS_CURVE_NAME})",
        "",
    ]
    for history in audit.runs:
        lines += [f"### Run {history.run.id}", ""]
        if history.problem:
            lines += [f"**History refused:** {history.problem}", ""]
            continue
        lines += [f"Hash-chain head on-chain `0x{history.run.head.hex()}`, recomputed from events "
                  f"`0x{(history.recomputed_head or b'').hex()}`.", ""]
        lines += _table(
            ["#", "step", "val loss", "weights", "committer", "block", "time (UTC)", "status"],
            [[str(c.index), str(c.step), "—" if c.val_loss is None else f"{c.val_loss:.4f}",
              _short(c.weights_digest.value.hex()), _short(c.committer), str(c.block_number), _time(c.timestamp),
              c.status.name.lower()] for c in history.checkpoints],
        )
        lines.append("")
    lines += ["## Releases", ""]
    lines += _table(
        ["label", "weights", "checkpoint", "released by", "time (UTC)", "status"],
        [[r.label, _short(r.checkpoint.weights_digest.value.hex()), f"run {r.checkpoint.run_id} step {r.checkpoint.step}",
          _short(r.released_by), _time(r.released_at), r.status.name.lower()] for r in audit.releases],
    )
    if audit.local:
        lines += ["", "## Local checkpoints", ""]
        lines += _table(
            ["path", "status", "run", "step", "detail"],
            [[f"`{m.path}`" if m.path else "—", m.status, _opt(m.run_id), _opt(m.step), m.detail] for m in audit.local],
        )
    if audit.replay:
        lines += ["", "## Replay (proof of learning)", ""]
        lines += _table(
            ["run", "steps", "test", "result", "L2", "L∞", "tolerance", "detail"],
            [[str(s.run_id), f"{s.from_step}→{s.to_step}", s.test, "pass" if s.ok else "**FAIL**", _number(s.l2), _number(s.linf), "—" if s.tolerance is None else f"{s.tolerance:g}", s.detail] for s in audit.replay],
        )
    return "\n".join(lines) + "\n"


def _run_records(audit: AuditReport) -> list[str]:
    """What each local run.json says the committed config was (when its digests match)."""
    lines = [""]
    for match in audit.run_records:
        verdict = "matches" if not match.mismatched else f"**does not match** ({', '.join(match.mismatched)})"
        lines += [f"Run {match.run_id}: `{match.path}` {verdict} the committed provenance digests.", ""]
        train = match.records.get("config", {}).get("train")
        if isinstance(train, dict):
            lines += ["Training config: " + ", ".join(f"`{k}={v}`" for k, v in sorted(train.items())), ""]
    return lines


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _opt(value: int | None) -> str:
    return "—" if value is None else str(value)


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


def _digest(digest: Digest | None) -> str:
    """A digest as `algorithm:first hex digits…` (the JSON output keeps it whole)."""
    return "—" if digest is None else f"`{digest.algorithm}:{digest.value.hex()[:12]}…`"


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _save_figure(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    _atomic_write(path, lambda handle: fig.savefig(handle, format="png", bbox_inches="tight"))


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same directory, then rename; never leave it half-done."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)
