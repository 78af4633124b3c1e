"""Figures of an evaluation result: confusion matrix and per-class F1.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state)
and written atomically, so a killed run never leaves a truncated PNG under a report's link.
Change-detection figures are drawn by :mod:`satmae.eval.change`; :func:`write_result_figures`
keeps the ones a result already lists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from satmae.io import atomic_path

FIGURES_DIRNAME = "figures"
"""Folder, inside a report's folder, that holds the figures the report writer draws."""

ANNOTATE_MAX_CLASSES = 15
"""Largest confusion matrix whose cells are annotated with their counts."""

DPI = 100
"""Resolution of the written PNGs."""


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` as a PNG at ``path``, atomically; refuse to replace a non-file."""
    target = Path(path)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise FileExistsError(
            f"{target} exists and is not a regular file; remove it or choose another folder"
        )
    FigureCanvasAgg(figure)
    with atomic_path(target) as staging:
        figure.savefig(staging, dpi=DPI, format="png")
    return target


def confusion_matrix_figure(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "confusion matrix (rows normalised)",
) -> Path:
    """Draw a row-normalised confusion matrix and write it as a PNG.

    Cell colour is the fraction of a true class predicted as each class (rows sum to 1; a class
    absent from the test set is an empty row). Counts are written in the cells when there are
    at most :data:`ANNOTATE_MAX_CLASSES` classes.

    Args:
        confusion: ``(K, K)`` counts, rows = true class, columns = predicted class.
        class_names: the K class names, in index order.
        path: the PNG to write.
        title: the figure's title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if ``confusion`` is not square, holds negative counts, or does not match
            ``class_names``.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"expected a square (K, K) confusion matrix, got shape {counts.shape}")
    if len(class_names) != counts.shape[0]:
        raise ValueError(
            f"confusion matrix has {counts.shape[0]} classes but {len(class_names)} class "
            "names were given; pass one name per row"
        )
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("confusion matrix counts must be finite and non-negative")
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    classes = counts.shape[0]
    side = min(max(4.0, 0.45 * classes + 2.5), 24.0)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of true class")
    ticks = np.arange(classes)
    axes.set_xticks(ticks, labels=list(class_names), rotation=60, ha="right", fontsize=8)
    axes.set_yticks(ticks, labels=list(class_names), fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if classes <= ANNOTATE_MAX_CLASSES:
        for row in range(classes):
            for col in range(classes):
                colour = "white" if fractions[row, col] > 0.5 else "black"
                axes.text(
                    col,
                    row,
                    f"{int(counts[row, col])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    return _save(figure, path)


def _scores(per_class: Mapping[str, Any], what: str) -> tuple[list[str], np.ndarray]:
    names = per_class.get("names")
    f1 = per_class.get("f1")
    if not isinstance(names, Sequence) or not isinstance(f1, Sequence) or len(names) != len(f1):
        raise ValueError(
            f"{what} per-class scores need 'names' and 'f1' lists of equal length, got keys "
            f"{sorted(per_class)}"
        )
    values = np.array([np.nan if v is None else float(v) for v in f1], dtype=np.float64)
    return [str(name) for name in names], values


def per_class_figure(
    per_class: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    baseline: Mapping[str, Any] | None = None,
    labels: tuple[str, str] = ("encoder", "baseline"),
    title: str = "F1 per class",
) -> Path:
    """Draw horizontal bars of F1 per class and write them as a PNG.

    Args:
        per_class: ``{"names": [K], "f1": [K], ...}`` as in a result's ``per_class``.
        path: the PNG to write.
        baseline: the same structure for a baseline, drawn beside the encoder's bars; its
            classes are matched by name (a class it lacks has no bar).
        labels: legend entries of the encoder and the baseline.
        title: the figure's title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if ``names`` and ``f1`` are missing or of different lengths.
    """
    names, encoder = _scores(per_class, "encoder")
    if not names:
        raise ValueError("per-class scores are empty: there is no class to draw")
    height = min(max(2.5, 0.32 * len(names) + 1.2), 30.0)
    figure = Figure(figsize=(7.0, height), layout="constrained")
    axes = figure.add_subplot()
    rows = np.arange(len(names))
    if baseline is None:
        axes.barh(rows, np.nan_to_num(encoder), height=0.7, color="#2b6cb0", label=labels[0])
    else:
        other_names, other = _scores(baseline, "baseline")
        lookup = dict(zip(other_names, other, strict=True))
        matched = np.array([lookup.get(name, np.nan) for name in names], dtype=np.float64)
        axes.barh(rows - 0.2, np.nan_to_num(encoder), height=0.4, color="#2b6cb0", label=labels[0])
        axes.barh(rows + 0.2, np.nan_to_num(matched), height=0.4, color="#a0aec0", label=labels[1])
        axes.legend(loc="lower right", fontsize=8)
    axes.set_yticks(rows, labels=names, fontsize=8)
    axes.invert_yaxis()  # first class on top, as in the tables
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("F1")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "result"


def _baseline_per_class(result: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The first baseline (by name) that carries per-class scores, if any."""
    baselines = result.get("baselines") or {}
    for name in sorted(baselines):
        scores = baselines[name].get("per_class") if isinstance(baselines[name], dict) else None
        if isinstance(scores, Mapping):
            return name, scores
    return None


def write_result_figures(
    result: Mapping[str, Any], out_dir: str | os.PathLike[str], *, stem: str | None = None
) -> dict[str, str]:
    """Draw the figures a result supports into ``out_dir/figures``.

    Single-label classification gets a confusion matrix (when the result has ``confusion``);
    classification and multi-label results get per-class F1 bars (when they have
    ``per_class``; beside the first baseline that has per-class scores too). Figures already
    listed in ``result["figures"]`` (e.g. change maps) are kept.

    Args:
        result: one evaluation result (see the result schema of ``satmae evaluate``).
        out_dir: the report folder; links are relative to it.
        stem: prefix of the figure file names (default ``"{benchmark}_{protocol}"``); give
            distinct stems when several results share a folder.

    Returns:
        ``{name: path relative to out_dir}`` of every figure of the result, POSIX separators.
    """
    root = Path(out_dir)
    figures: dict[str, str] = {str(k): str(v) for k, v in (result.get("figures") or {}).items()}
    prefix = _slug(stem or f"{result.get('benchmark', 'result')}_{result.get('protocol', '')}")
    task = result.get("task")
    model = (result.get("model") or {}).get("name", "encoder")
    confusion = result.get("confusion")
    if task == "classification" and confusion:
        per_class = result.get("per_class") or {}
        classes = per_class.get("names") or (result.get("data") or {}).get("classes")
        if not classes:
            classes = [str(i) for i in range(len(confusion))]
        relative = f"{FIGURES_DIRNAME}/{prefix}_confusion.png"
        confusion_matrix_figure(
            confusion,
            classes,
            root / relative,
            title=f"{result.get('benchmark', '')} {result.get('protocol', '')}: confusion "
            "(rows normalised)",
        )
        figures["confusion"] = relative
    per_class = result.get("per_class")
    if task in ("classification", "multilabel") and per_class and per_class.get("names"):
        relative = f"{FIGURES_DIRNAME}/{prefix}_per_class_f1.png"
        found = _baseline_per_class(result)
        per_class_figure(
            per_class,
            root / relative,
            baseline=found[1] if found else None,
            labels=(str(model), found[0] if found else "baseline"),
            title=f"{result.get('benchmark', '')} {result.get('protocol', '')}: F1 per class",
        )
        figures["per_class_f1"] = relative
    return figures
