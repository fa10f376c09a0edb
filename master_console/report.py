"""The one-page training report: what a surgeon and their instructor read after an attempt.

:func:`render_report` draws one A4-landscape page (matplotlib, Agg canvas, no screen needed):

- the header: task, trainee, date, the task's goal, and a banner PASSED / FAILED / NOT
  COMPLETED with the overall score;
- the score table: every metric with its value, its pass/fail threshold and the result,
  coloured, and the points each part of the overall score lost;
- the tool path seen from above (x-y) and from the side (x-z), coloured by time while the
  clutch was engaged, with the task's points (targets, pegs, rings, search area);
- the instrument force over time with the task's force limit and the time above it shaded;
- the round-trip latency over time;
- the comparison with the trainee's earlier attempts at the task: overall score and
  completion time per attempt, this attempt highlighted.

The same figure is saved as PNG and, when asked, as PDF.
"""

from __future__ import annotations

import itertools
import math
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from master_console.scoring import Score, TaskRun, search_area_outline, task_window

__all__ = ["DPI", "PAGE_SIZE_IN", "render_report"]

PAGE_SIZE_IN = (11.69, 8.27)
"""A4 landscape."""
DPI = 150

GREEN = "#2e7d32"
RED = "#c62828"
AMBER = "#e08a00"
GREY = "#757575"
INK = "#212121"
LIGHT = "#f3f4f6"
BLUE = "#1f4e9c"
PURPLE = "#6a1b9a"

TASK_TITLES = {"reach": "Reach", "peg-transfer": "Peg transfer", "palpation": "Palpation"}

_POINT_STYLES: dict[str, dict[str, Any]] = {
    "targets": {"marker": "o", "s": 70, "facecolor": "#ffcc80", "edgecolor": "#e65100"},
    "pegs_from": {"marker": "o", "s": 36, "facecolor": "#bdbdbd", "edgecolor": "#424242"},
    "pegs_to": {"marker": "o", "s": 36, "facecolor": "white", "edgecolor": "#1565c0"},
    "rings": {"marker": "s", "s": 70, "facecolor": "none", "edgecolor": "#e65100"},
    "lumps": {"marker": "X", "s": 60, "facecolor": "#ad1457", "edgecolor": "white"},
}
_OTHER_POINTS = {"marker": "D", "s": 30, "facecolor": "#90caf9", "edgecolor": BLUE}
_POINT_LABELS = {
    "targets": "targets",
    "pegs_from": "pegs (from)",
    "pegs_to": "pegs (to)",
    "rings": "rings (start)",
    "lumps": "lumps",
    "search_area": "search area",
    "pad_top": "pad centre",
}

Row = tuple[str, str, str, "bool | None"]

# =============================================================================================
# The score as plain data
# =============================================================================================


def _ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if not _ok(v):
        return "—"
    if isinstance(v, int):
        return f"{v}{unit}"
    return f"{v:.{digits}f}{unit}"


def _of(n: Any, total: Any) -> str:
    """'2 of 3', '2', or '—'."""
    if not _ok(n):
        return "—"
    return f"{_fmt(n)} of {_fmt(total)}" if _ok(total) else _fmt(n)


def _limit_text(check: Mapping[str, Any] | None, unit: str = "") -> str:
    if check is None:
        return "—"
    if check["op"] == "==":
        return "required"
    op = "≤" if check["op"] == "<=" else "≥"
    lim = check["limit"]
    return f"{op} {lim:g}{unit}" if _ok(lim) else "—"


def _as_dict(score: Score | Mapping[str, Any]) -> dict[str, Any]:
    d = score.to_dict() if hasattr(score, "to_dict") else dict(score)
    for key, empty in (("metrics", {}), ("checks", []), ("penalties", {}), ("notes", [])):
        d.setdefault(key, empty)
    d.setdefault("completed", bool(d["metrics"].get("completed")))
    d.setdefault("passed", False)
    d.setdefault("task", "")
    return d


def _status(s: Mapping[str, Any]) -> tuple[str, str]:
    if not s["completed"]:
        return "NOT COMPLETED", AMBER
    return ("PASSED", GREEN) if s["passed"] else ("FAILED", RED)


def _rows(s: Mapping[str, Any]) -> list[Row]:
    """(metric, value, threshold, passed) rows of the score table; passed None = no check."""
    m = s["metrics"]
    checks = {c["metric"]: c for c in s["checks"]}
    rows: list[Row] = []

    def add(label: str, value: str, metric: str | None = None, unit: str = "") -> None:
        c = checks.get(metric) if metric else None
        rows.append((label, value, _limit_text(c, unit), None if c is None else c["passed"]))

    add("Task completed", "yes" if s["completed"] else "no", "completed")
    t = m.get("completion_time_s")
    if _ok(t):
        tv = f"{t:.1f} s"
        if _ok(m.get("arm_elapsed_s")):
            tv += f"  (arm {m['arm_elapsed_s']:.1f} s)"
    else:
        tv = f"not done  ({_fmt(m.get('elapsed_s'), ' s')} used)"
    add("Completion time", tv, "completion_time_s", " s")
    task = s["task"]
    if task == "reach":
        add("Targets touched", _of(m.get("targets_touched"), m.get("targets_total")))
    elif task == "peg-transfer":
        add("Rings placed", _of(m.get("rings_placed"), m.get("rings_total")))
        add("Drops", _fmt(m.get("drops")), "drops")
    elif task == "palpation":
        fv = _fmt(m.get("found"))
        if _ok(m.get("marks")):
            fv += f"  ({m['marks']} marks)"
        add("Lumps found", fv, "found")
        add("Mark error", _fmt(m.get("mark_error_mm"), " mm"), "mark_error_mm", " mm")
    pl = m.get("path_length_m")
    pv = f"{pl * 1000:.0f} mm" if _ok(pl) else "—"
    if _ok(m.get("ideal_path_m")):
        pv += f"  (ideal {m['ideal_path_m'] * 1000:.0f} mm)"
    add("Tool path length", pv)
    add("Economy of motion", _fmt(m.get("economy_of_motion"), "", 2), "economy_of_motion")
    add("Instrument collisions", _fmt(m.get("instrument_collisions")), "instrument_collisions")
    ef = _fmt(m.get("excessive_force_s"), " s")
    if _ok(m.get("arm_excessive_force_s")):
        ef += f"  (arm {m['arm_excessive_force_s']:.1f} s)"
    add("Excessive force", ef, "excessive_force_s", " s")
    add(
        "Peak force",
        f"{_fmt(m.get('peak_force_n'), ' N')}  (limit {_fmt(m.get('force_limit_n'), ' N')})",
    )
    add("Clutch uses", _fmt(m.get("clutch_count")))
    add("Idle time (< 2 mm/s)", _fmt(m.get("idle_time_s"), " s"))
    add("Smoothness (LDLJ)", _fmt(m.get("log_dimensionless_jerk"), "", 1))
    tr = m.get("tremor_rms_um")
    tv = f"{tr:.0f} µm RMS" if _ok(tr) else "—"
    if _ok(m.get("tremor_ratio")):
        tv += f"  ({100 * m['tremor_ratio']:.0f} % of voluntary)"
    add("Hand tremor 6–16 Hz", tv)
    p50, p99 = m.get("rtt_p50_ms"), m.get("rtt_p99_ms")
    add("Round trip p50 / p99", f"{p50:.0f} / {p99:.0f} ms" if _ok(p50) and _ok(p99) else "—")
    return rows


# =============================================================================================
# Panels
# =============================================================================================


def _text(fig_or_ax: Any, x: float, y: float, s: str, **kw: Any) -> Any:
    kw.setdefault("color", INK)
    kw.setdefault("va", "center")
    return fig_or_ax.text(x, y, s, **kw)


def _header(fig: Any, s: Mapping[str, Any], run: TaskRun, trainee: str, when: float) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch

    task = s["task"]
    _text(
        fig,
        0.035,
        0.945,
        f"{TASK_TITLES.get(task, task)} — training report",
        fontsize=19,
        fontweight="bold",
    )
    date = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    _text(fig, 0.035, 0.905, f"Trainee: {trainee}    ·    {date}", fontsize=10.5)
    goal = str(run.info.get("goal") or "").strip()
    if goal:
        goal = goal if len(goal) <= 120 else goal[:117] + "…"
        _text(fig, 0.035, 0.875, goal, fontsize=9, color=GREY, style="italic")

    label, color = _status(s)
    x0, y0, w, h = 0.66, 0.865, 0.305, 0.105
    fig.add_artist(
        FancyBboxPatch(
            (x0, y0),
            w,
            h,
            boxstyle="round,pad=0.004,rounding_size=0.012",
            transform=fig.transFigure,
            facecolor=color,
            edgecolor="none",
        )
    )
    white = {"color": "white"}
    _text(
        fig,
        x0 + 0.018,
        y0 + h * 0.62,
        label,
        fontsize=20 if len(label) < 8 else 17,
        fontweight="bold",
        **white,
    )
    _text(fig, x0 + 0.018, y0 + h * 0.24, "overall score", fontsize=9.5, alpha=0.9, **white)
    overall = s.get("overall")
    _text(
        fig,
        x0 + w - 0.016,
        y0 + h * 0.52,
        f"{overall:.0f}" if _ok(overall) else "—",
        fontsize=34,
        fontweight="bold",
        ha="right",
        **white,
    )
    _text(fig, x0 + w - 0.016, y0 + h * 0.13, "/ 100", fontsize=8.5, ha="right", alpha=0.9, **white)
    fig.add_artist(
        Line2D(
            [0.035, 0.965],
            [0.852, 0.852],
            transform=fig.transFigure,
            color="#d0d0d0",
            linewidth=0.8,
        )
    )


def _table(ax: Any, rows: list[Row]) -> None:
    from matplotlib.patches import FancyBboxPatch, Rectangle

    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(rows) + 1.0, 0)
    cols = (0.01, 0.315, 0.77, 0.935)
    heads = ("Metric", "Value", "Limit", "Result")
    for x, head, ha in zip(cols, heads, ("left", "left", "left", "center"), strict=True):
        _text(ax, x, 0.5, head, fontsize=8.5, fontweight="bold", color=GREY, ha=ha)
    ax.plot([0, 1], [1.0, 1.0], color="#bdbdbd", linewidth=0.8)
    for i, (metric, value, limit, ok) in enumerate(rows):
        y = i + 1.5
        if i % 2 == 0:
            ax.add_patch(Rectangle((0, y - 0.5), 1, 1, facecolor=LIGHT, edgecolor="none"))
        _text(ax, cols[0], y, metric, fontsize=8.5)
        _text(
            ax,
            cols[1],
            y,
            value,
            fontsize=8.5,
            color=RED if ok is False else INK,
            fontweight="bold" if ok is False else "normal",
        )
        _text(ax, cols[2], y, limit, fontsize=8.5, color=GREY)
        if ok is None:
            continue
        ax.add_patch(
            FancyBboxPatch(
                (cols[3] - 0.045, y - 0.32),
                0.09,
                0.64,
                boxstyle="round,pad=0,rounding_size=0.2",
                mutation_aspect=1 / 10,
                facecolor=GREEN if ok else RED,
                edgecolor="none",
            )
        )
        _text(
            ax,
            cols[3],
            y,
            "PASS" if ok else "FAIL",
            fontsize=7,
            fontweight="bold",
            color="white",
            ha="center",
        )


def _breakdown(ax: Any, s: Mapping[str, Any]) -> None:
    """The points each part of the score lost, on one 100-point bar."""
    ax.set_axis_off()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1)
    pen = {k: float(v) for k, v in s.get("penalties", {}).items() if _ok(v) and v > 0}
    overall = float(s["overall"]) if _ok(s.get("overall")) else 0.0
    _text(ax, 0, 0.93, "How the score is made", fontsize=9, fontweight="bold")
    ax.barh(0.6, overall, height=0.3, color=_status(s)[1], alpha=0.9)
    if overall >= 12:
        _text(ax, 1.5, 0.6, f"{overall:.0f} points", fontsize=7.5, color="white", fontweight="bold")
    left = overall
    for i, (k, v) in enumerate(sorted(pen.items(), key=lambda kv: -kv[1])):
        ax.barh(
            0.6,
            v,
            left=left,
            height=0.3,
            color=("#9e9e9e", "#c4c4c4")[i % 2],
            edgecolor="white",
            linewidth=0.8,
        )
        if v >= 10:
            _text(
                ax, left + v / 2, 0.6, f"{k}\n−{v:.0f}", fontsize=6.5, ha="center", linespacing=0.9
            )
        left += v
    lost = "; ".join(f"{k} −{v:.1f}" for k, v in pen.items()) or "nothing"
    text = textwrap.fill(f"100 minus the points lost: {lost}", width=82)
    _text(ax, 0, 0.34, text, fontsize=7.5, color=GREY, va="top", linespacing=1.3)


def _engaged_states(run: TaskRun) -> np.ndarray:
    """Clutch engaged at each state (looked up one median round trip earlier)."""
    if len(run.clutch) == 0:
        return np.ones(len(run.t_s), dtype=bool)
    rtt = run.rtt_ms[np.isfinite(run.rtt_ms)]
    lag = float(np.median(rtt)) * 1e-3 if len(rtt) else 0.0
    order = np.argsort(run.clutch_t_s, kind="stable")
    idx = np.searchsorted(run.clutch_t_s[order], run.t_s - lag, side="right") - 1
    return np.where(idx >= 0, run.clutch[order][np.clip(idx, 0, None)], False)


def _equal_limits(ax: Any, lo: np.ndarray, hi: np.ndarray) -> None:
    """Limits around [lo, hi] with the same scale on both axes of the axes' box."""
    bbox = ax.get_position()
    fw, fh = ax.figure.get_size_inches()
    box_ratio = (bbox.height * fh) / max(bbox.width * fw, 1e-9)
    center = (lo + hi) / 2.0
    span = np.maximum((hi - lo) * 1.16, 8.0)
    if span[1] / span[0] < box_ratio:
        span[1] = span[0] * box_ratio
    else:
        span[0] = span[1] / box_ratio
    ax.set_xlim(center[0] - span[0] / 2, center[0] + span[0] / 2)
    ax.set_ylim(center[1] - span[1] / 2, center[1] + span[1] / 2)


def _path_view(
    ax: Any,
    run: TaskRun,
    axes: tuple[int, int],
    title: str,
    start: float,
    end: float,
    cax: Any = None,
    legend: bool = False,
) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle, Polygon

    a, b = axes
    ax.set_title(title, fontsize=10, loc="left", color=INK)
    ax.set_xlabel(f"{'xyz'[a]} (mm)", fontsize=8, labelpad=2)
    ax.set_ylabel(f"{'xyz'[b]} (mm)", fontsize=8, labelpad=2)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    extent = []
    ok = np.all(np.isfinite(run.tool_pos), axis=1)
    t, p = run.t_s[ok], run.tool_pos[ok] * 1000.0
    if len(t) >= 2:
        ax.plot(
            p[:, a],
            p[:, b],
            color="#cfcfcf",
            linewidth=0.8,
            zorder=1,
            label="clutched out / outside",
        )
        use = _engaged_states(run)[ok] & (t >= start - 1e-9) & (t <= end + 1e-9)
        if np.any(use):
            step = max(1, len(t) // 4000)
            xy = np.where(use[:, None], p[:, [a, b]], np.nan)[::step]
            seg = np.stack([xy[:-1], xy[1:]], axis=1)
            good = np.all(np.isfinite(seg.reshape(len(seg), -1)), axis=1)
            lc = LineCollection(seg[good], cmap="viridis", linewidth=1.7, zorder=2)
            lc.set_array(t[::step][:-1][good] - start)
            lc.set_clim(0, max(end - start, 1e-3))
            ax.add_collection(lc)
            if cax is not None:
                cb = ax.figure.colorbar(lc, cax=cax)
                cb.set_label("time from start (s)", fontsize=7.5)
                cb.ax.tick_params(labelsize=7)
                cb.outline.set_visible(False)
        i0 = min(int(np.searchsorted(t, start)), len(t) - 1)
        i1 = max(min(int(np.searchsorted(t, end, side="right")) - 1, len(t) - 1), 0)
        ax.plot(
            p[i0, a],
            p[i0, b],
            marker="o",
            markersize=7,
            color=GREEN,
            zorder=6,
            markeredgecolor="white",
            linestyle="none",
            label="start",
        )
        ax.plot(
            p[i1, a],
            p[i1, b],
            marker="s",
            markersize=7,
            color=INK,
            zorder=6,
            markeredgecolor="white",
            linestyle="none",
            label="end",
        )
        extent.append(p[:, [a, b]])
    radius_mm = float(run.values.get("touch_radius_m", 0.0)) * 1000.0
    for name, pts in run.points.items():
        q = pts * 1000.0
        extent.append(q[:, [a, b]])
        label = _POINT_LABELS.get(name, name.replace("_", " "))
        if name == "search_area":
            outline = search_area_outline(run.points)
            if outline is None:
                continue
            q = outline * 1000.0
            ax.add_patch(
                Polygon(
                    q[:, [a, b]],
                    closed=True,
                    facecolor="#fff3e0",
                    alpha=0.8,
                    edgecolor="#e65100",
                    linestyle="--",
                    linewidth=1.0,
                    zorder=0,
                    label=label,
                )
            )
            continue
        style = _POINT_STYLES.get(name, _OTHER_POINTS)
        ax.scatter(q[:, a], q[:, b], zorder=4, linewidths=1.1, label=label, **style)
        if name == "targets":
            for i, c in enumerate(q, start=1):
                if radius_mm > 0:
                    ax.add_patch(
                        Circle(
                            (c[a], c[b]),
                            radius_mm,
                            facecolor="none",
                            zorder=3,
                            edgecolor="#e65100",
                            linestyle=":",
                            linewidth=0.8,
                        )
                    )
                ax.annotate(
                    str(i),
                    (c[a], c[b]),
                    xytext=(5, 4),
                    textcoords="offset points",
                    fontsize=7,
                    color="#e65100",
                    zorder=5,
                )
    if extent:
        allp = np.vstack(extent)
        allp = allp[np.all(np.isfinite(allp), axis=1)]
        _equal_limits(ax, allp.min(axis=0), allp.max(axis=0))
    else:
        _text(
            ax,
            0.5,
            0.5,
            "no tool positions recorded",
            ha="center",
            transform=ax.transAxes,
            color=GREY,
        )
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(0.0, -0.16),
            ncol=4,
            fontsize=7,
            frameon=False,
            handlelength=1.6,
            columnspacing=1.4,
            borderaxespad=0.0,
        )


def _envelope(t: np.ndarray, y: np.ndarray, bins: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Min and max per bin, so short peaks survive plotting a long series."""
    if len(t) <= 2 * bins:
        return t, y
    edges = np.linspace(0, len(t), bins + 1).astype(int)
    tt, yy = [], []
    for i0, i1 in itertools.pairwise(edges):
        seg = y[i0:i1]
        if not len(seg) or not np.any(np.isfinite(seg)):
            continue
        for j in sorted((int(np.nanargmin(seg)), int(np.nanargmax(seg)))):
            tt.append(t[i0 + j])
            yy.append(seg[j])
    return np.array(tt), np.array(yy)


def _time_axes(ax: Any, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10, loc="left", color=INK)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _mark_window(ax: Any, start: float, end: float, completed: bool, labels: bool) -> None:
    ax.axvline(0.0, color=GREEN, linewidth=0.9, alpha=0.8)
    where = {"transform": ax.get_xaxis_transform(), "fontsize": 7, "va": "top"}
    if labels:
        _text(ax, 0.0, 0.99, " start", color=GREEN, ha="left", **where)
    if completed:
        ax.axvline(end - start, color=INK, linewidth=0.9, alpha=0.8)
        if labels:
            _text(ax, end - start, 0.99, "done ", ha="right", **where)


def _no_data(ax: Any, what: str) -> None:
    _text(ax, 0.5, 0.5, what, ha="center", transform=ax.transAxes, color=GREY)
    ax.set_yticks([])


def _force(ax: Any, s: Mapping[str, Any], run: TaskRun, start: float, end: float) -> None:
    m = s["metrics"]
    limit = m.get("force_limit_n")
    title = "Instrument force"
    if _ok(m.get("peak_force_n")):
        title += f"  —  peak {m['peak_force_n']:.1f} N"
    if _ok(m.get("excessive_force_s")) and _ok(limit):
        title += f", {m['excessive_force_s']:.1f} s above the {limit:.1f} N limit"
    _time_axes(ax, title, "force (N)")
    ok = np.isfinite(run.force_n)
    if not np.any(ok):
        _no_data(ax, "no force recorded")
        return
    t, f = run.t_s[ok] - start, run.force_n[ok]
    ax.plot(*_envelope(t, f), color=BLUE, linewidth=0.8)
    top = float(np.nanmax(f))
    if _ok(limit):
        ax.axhline(limit, color=RED, linestyle="--", linewidth=1.0)
        _text(
            ax,
            1.0,
            limit,
            f" {limit:g} N",
            transform=ax.get_yaxis_transform(),
            fontsize=7,
            color=RED,
            va="center",
            ha="left",
        )
        inside = (t >= -1e-9) & (t <= end - start + 1e-9)
        ax.fill_between(
            t, 0, f, where=(f > limit) & inside, color=RED, alpha=0.3, linewidth=0, step="post"
        )
        top = max(top, limit)
    ax.set_ylim(0, top * 1.2 + 1e-3)
    ax.set_xlim(min(0.0, float(t[0])), max(float(t[-1]), end - start, 1e-3))
    _mark_window(ax, start, end, bool(s["completed"]), labels=True)


def _latency(ax: Any, s: Mapping[str, Any], run: TaskRun, start: float, end: float) -> None:
    m = s["metrics"]
    title = "Round-trip latency"
    if _ok(m.get("rtt_p50_ms")):
        title += (
            f"  —  p50 {m['rtt_p50_ms']:.0f} ms, p99 {m['rtt_p99_ms']:.0f} ms, "
            f"max {m['rtt_max_ms']:.0f} ms"
        )
    _time_axes(ax, title, "RTT (ms)")
    ax.set_xlabel("time from start (s)", fontsize=8, labelpad=2)
    ok = np.isfinite(run.rtt_ms)
    if not np.any(ok):
        _no_data(ax, "no round-trip samples recorded")
        return
    t, r = run.rtt_t_s[ok] - start, run.rtt_ms[ok]
    ax.plot(*_envelope(t, r), color=PURPLE, linewidth=0.7)
    ax.axhline(float(np.median(r)), color=INK, linestyle=":", linewidth=1.0)
    ax.set_ylim(0, float(np.max(r)) * 1.25 + 1.0)
    _mark_window(ax, start, end, bool(s["completed"]), labels=False)


def _attempt_rows(
    s: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], current_id: int | None
) -> tuple[list[dict[str, Any]], int]:
    """The attempts to plot (the last 12) and the index of this one among them."""
    rows = [dict(a) for a in attempts]
    cur = None
    if current_id is not None:
        cur = next((i for i, a in enumerate(rows) if a.get("id") == current_id), None)
    elif rows:
        last = rows[-1]
        if (
            _ok(last.get("overall"))
            and _ok(s.get("overall"))
            and abs(float(last["overall"]) - float(s["overall"])) < 0.05
            and bool(last.get("completed")) == bool(s["completed"])
        ):
            cur = len(rows) - 1
    if cur is None:
        rows.append(
            {
                "overall": s.get("overall"),
                "completed": s["completed"],
                "passed": s["passed"],
                "completion_time_s": s["metrics"].get("completion_time_s"),
            }
        )
        cur = len(rows) - 1
    for i, r in enumerate(rows, start=1):
        r.setdefault("number", i)
    first = max(0, len(rows) - 12)
    return rows[first:], cur - first


def _history(
    ax: Any, s: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], current_id: int | None
) -> None:
    from matplotlib.patches import Patch

    rows, cur = _attempt_rows(s, attempts, current_id)
    heights = [float(r["overall"]) if _ok(r.get("overall")) else 0.0 for r in rows]
    title = "Your attempts at this task"
    if len(rows) > 1:
        best = max(h for i, h in enumerate(heights) if i != cur)
        d = heights[cur] - best
        title += f"  —  best before {best:.0f}, now {'+' if d >= 0 else '−'}{abs(d):.0f}"
    ax.set_title(title, fontsize=10, loc="left", color=INK)
    ax.tick_params(labelsize=7)
    ax.spines["top"].set_visible(False)
    x = np.arange(len(rows))
    colors = [(GREEN if r.get("passed") else RED) if r.get("completed") else AMBER for r in rows]
    bars = ax.bar(x, heights, width=0.62, color=colors, alpha=0.4, edgecolor="none")
    bars[cur].set_alpha(1.0)
    bars[cur].set_edgecolor(INK)
    bars[cur].set_linewidth(1.3)
    ax.set_ylim(0, 135)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.set_ylabel("overall score", fontsize=8)
    labels = []
    for i, r in enumerate(rows):
        lab = "this\nattempt" if i == cur else f"#{r['number']}"
        if i != cur and _ok(r.get("delay_ms")) and r["delay_ms"] > 0:
            lab += f"\n+{r['delay_ms']:.0f} ms"
        labels.append(lab)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.get_xticklabels()[cur].set_fontweight("bold")
    ax.set_xlim(-0.6, max(len(rows), 5) - 0.4)
    ax.grid(True, axis="y", color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    handles = [
        Patch(color=GREEN, label="passed"),
        Patch(color=RED, label="failed"),
        Patch(color=AMBER, label="not completed"),
    ]
    times = np.array(
        [float(r["completion_time_s"]) if _ok(r.get("completion_time_s")) else np.nan for r in rows]
    )
    ax2 = ax.twinx()
    ax2.tick_params(labelsize=7, colors=BLUE)
    ax2.set_ylabel("completion time (s)", fontsize=8, color=BLUE)
    ax2.spines["top"].set_visible(False)
    ax2.spines["right"].set_color(BLUE)
    if np.any(np.isfinite(times)):
        (line,) = ax2.plot(
            x, times, color=BLUE, marker="o", markersize=4, linewidth=1.2, label="time"
        )
        if np.isfinite(times[cur]):
            ax2.plot(
                x[cur],
                times[cur],
                marker="o",
                markersize=8,
                color=BLUE,
                markeredgecolor="white",
                markeredgewidth=1.2,
            )
        ax2.set_ylim(0, float(np.nanmax(times)) * 1.35)
        handles.append(line)
    else:
        ax2.set_ylim(0, 1)
        ax2.set_yticks([])
        ax2.set_ylabel("")
        ax2.spines["right"].set_visible(False)
    ax.legend(
        handles=handles,
        loc="upper left",
        ncol=4,
        fontsize=6.5,
        frameon=False,
        handlelength=1.0,
        columnspacing=0.9,
        borderaxespad=0.2,
    )
    if len(rows) == 1:
        _text(
            ax,
            0.98,
            0.55,
            "first attempt:\nnothing to compare yet",
            ha="right",
            transform=ax.transAxes,
            fontsize=7.5,
            color=GREY,
            style="italic",
        )


# =============================================================================================
# The page
# =============================================================================================


def render_report(
    score: Score | Mapping[str, Any],
    run: TaskRun,
    attempts: Sequence[Mapping[str, Any]] | None,
    png_path: str | Path,
    pdf_path: str | Path | None = None,
    *,
    trainee: str | None = None,
    when_unix_s: float | None = None,
    current_id: int | None = None,
    dpi: int = DPI,
) -> list[Path]:
    """Draw the one-page report of an attempt; returns the files written (PNG, then PDF).

    ``score``: a :class:`~master_console.scoring.Score` (or its ``to_dict()``);
    ``attempts``: the trainee's attempts at the task, oldest first
    (:meth:`master_console.history.History.attempts`; empty or None for none): this attempt
    is the one with id ``current_id``, else the last one if it has this score, else it is
    added at the end.  ``trainee`` defaults to the attempts' trainee (else "trainee");
    ``when_unix_s`` to the recording's start (else now).  The page is A4 landscape
    (11.69 x 8.27 in) at ``dpi``.
    """
    from matplotlib.figure import Figure  # no pyplot: an Agg canvas, no GUI, no global state

    s = _as_dict(score)
    if not trainee:  # the attempts are the trainee's own
        names = {str(a.get("trainee")) for a in attempts or () if a.get("trainee")}
        trainee = names.pop() if len(names) == 1 else "trainee"
    when = when_unix_s if when_unix_s is not None else run.started_unix_s
    when = float(when) if when is not None else time.time()
    start, end, _ = task_window(run)

    fig = Figure(figsize=PAGE_SIZE_IN, dpi=dpi, facecolor="white")
    _header(fig, s, run, trainee, when)

    # left column: the table, how the score is made, the attempts, notes
    rows = _rows(s)
    left, width = 0.035, 0.395
    row_h = 0.0265
    table_top = 0.835
    table_bottom = table_top - row_h * (len(rows) + 1)
    _table(fig.add_axes((left, table_bottom, width, table_top - table_bottom)), rows)
    bd_top = table_bottom - 0.012
    _breakdown(fig.add_axes((left, bd_top - 0.09, width, 0.09)), s)
    notes = [str(n) for n in s.get("notes", [])][:2]
    hist_bottom = 0.075 + 0.017 * len(notes)
    hist_top = bd_top - 0.09 - 0.04
    _history(
        fig.add_axes((left + 0.04, hist_bottom, width - 0.085, hist_top - hist_bottom)),
        s,
        attempts or [],
        current_id,
    )
    for i, n in enumerate(notes):
        n = n if len(n) <= 100 else n[:97] + "…"
        _text(
            fig,
            left,
            0.022 + 0.017 * (len(notes) - 1 - i),
            f"Note: {n}",
            fontsize=7,
            color=GREY,
            style="italic",
        )

    # right: the path from above and from the side, force, latency
    rx = 0.50
    _path_view(
        fig.add_axes((rx, 0.535, 0.245, 0.265)),
        run,
        (0, 1),
        "Tool path, top view",
        start,
        end,
        legend=True,
    )
    _path_view(
        fig.add_axes((0.805, 0.535, 0.125, 0.265)),
        run,
        (0, 2),
        "Side view",
        start,
        end,
        cax=fig.add_axes((0.945, 0.55, 0.008, 0.235)),
    )
    force_ax = fig.add_axes((rx, 0.255, 0.455, 0.14))
    _force(force_ax, s, run, start, end)
    _latency(fig.add_axes((rx, 0.075, 0.455, 0.12), sharex=force_ax), s, run, start, end)
    _text(
        fig,
        0.965,
        0.012,
        "Metrics: da Vinci Skills Simulator, FLS, log dimensionless jerk (master_console.scoring)",
        fontsize=6.5,
        color="#9e9e9e",
        ha="right",
    )

    out = []
    png = Path(png_path)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=dpi, facecolor="white")
    out.append(png)
    if pdf_path is not None:
        pdf = Path(pdf_path)
        pdf.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(pdf, facecolor="white")
        out.append(pdf)
    return out
