"""Reports of ``satmae evaluate``: ``report.json``, ``report.md``, figures and ``--compare``.

:func:`write_report` stores one or several results (the dicts an evaluation run returns) as
``report.json`` (versioned, machine-readable) and ``report.md`` (verdicts first, then metrics,
baselines, model, data, config, runtime, versions and figures). :func:`compare_reports` puts
the metrics of several reports side by side. :func:`satmae_info_dict` gives the machine facts
of ``satmae info`` for a result's ``machine`` entry.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satmae.eval.figures import write_result_figures
from satmae.io import atomic_path, claim_output

REPORT_VERSION = 1
"""Version of the ``report.json`` layout; :func:`compare_reports` reads versions up to it."""

VERSION_KEY = "satmae_report_version"
"""Key that marks a JSON file as a satmae report."""

REPORT_JSON = "report.json"
REPORT_MD = "report.md"

_REQUIRED = ("benchmark", "task", "protocol", "metrics")
_LIST_LIMIT = 20  # items of a long list (skipped files, classes) shown in report.md


# ---------------------------------------------------------------------------------------------
# machine facts


def _cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, the platform's answer elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages an evaluation's numbers depend on."""
    import importlib.metadata

    import torch

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "satmae": version("satmae"),
        "torch": torch.__version__,
        "torchgeo": version("torchgeo"),
        "timm": version("timm"),
        "python": platform.python_version(),
    }


def satmae_info_dict() -> dict[str, Any]:
    """Machine facts of ``satmae info`` as a flat dict for a result's ``machine`` entry.

    Reuses :func:`satmae.cli.info.collect_info` (versions, CUDA, MPS, CPU capability, native
    bf16, threads) and adds the CPU model name and the device an evaluation would use.

    Returns:
        ``{"cpu_model", "cpu_capability", "cpu_bf16", "threads", "device", "cuda_devices",
        "cuda_bf16", "mps", "torch", "python", "platform", "satmae"}``.
    """
    from satmae.cli.info import collect_info

    info = collect_info()
    cuda, cpu = info["cuda"], info["cpu"]
    if cuda["available"]:
        device = f"cuda ({', '.join(cuda['devices'])})"
    elif info["mps"]:
        device = "mps"
    else:
        device = "cpu"
    return {
        "cpu_model": _cpu_model(),
        "cpu_capability": cpu["capability"],
        "cpu_bf16": cpu["bf16"],
        "threads": cpu["threads"],
        "device": device,
        "cuda_devices": list(cuda["devices"]),
        "cuda_bf16": cuda["bf16"],
        "mps": info["mps"],
        "torch": info["packages"].get("torch", "not installed"),
        "python": info["python"],
        "platform": info["platform"],
        "satmae": info["satmae"],
    }


# ---------------------------------------------------------------------------------------------
# writing


def _jsonable(value: Any, where: str = "result") -> Any:
    """A JSON-safe copy: tuples to lists, numpy/torch scalars and arrays to Python, NaN to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return _jsonable(value.tolist(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which report.json cannot store; results "
        "must hold only floats, ints, strings, bools, lists and dicts"
    )


def _check_result(result: Any, index: int) -> None:
    if not isinstance(result, Mapping):
        raise ValueError(f"result {index} is a {type(result).__name__}, expected a result dict")
    missing = [key for key in _REQUIRED if key not in result]
    if missing:
        raise ValueError(
            f"result {index} lacks {', '.join(missing)}; a result needs at least "
            f"{', '.join(_REQUIRED)} (see the result schema of satmae evaluate)"
        )


def _stems(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Distinct figure-name prefixes: benchmark_protocol, numbered where two results share one."""
    base = [f"{r['benchmark']}_{r['protocol']}" for r in results]
    return [f"{b}_{i}" if base.count(b) > 1 else b for i, b in enumerate(base)]


def write_report(
    results: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``report.json``, ``report.md`` and the figures of one or several results.

    The figures are drawn first (into ``out_dir/figures``, see
    :func:`~satmae.eval.figures.write_result_figures`) and listed in each result's
    ``figures``; then ``report.json`` and last ``report.md``, each atomically, so a killed run
    leaves either the old file or the complete new one.

    Args:
        results: one result dict or a list of them (the schema of ``satmae evaluate``).
        out_dir: the report folder (created if needed).
        overwrite: replace an existing ``report.json`` / ``report.md``. Something that is not
            a regular file (a folder, a link) is never replaced.

    Returns:
        The path of ``report.md``; ``report.json`` lies beside it.

    Raises:
        FileExistsError: if a report exists and ``overwrite`` is false, a report path is not a
            regular file, ``out_dir`` is a file, or another process is writing the report
            (``OutputBusyError``).
        ValueError: if there is no result or a result lacks benchmark, task, protocol or
            metrics.
        TypeError: if a result holds a value JSON cannot store.
    """
    items = [results] if isinstance(results, Mapping) else list(results)
    if not items:
        raise ValueError("no result to report; pass a result dict or a non-empty list of them")
    for index, result in enumerate(items):
        _check_result(result, index)
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"--out {root} is a file; give a folder for the report")
    json_path, md_path = root / REPORT_JSON, root / REPORT_MD
    # Both reports are claimed (locked and checked) before any figure is drawn, and stay locked
    # until both are written: a concurrent run of the same --out fails at once.
    with (
        claim_output(json_path, overwrite=overwrite),
        claim_output(md_path, overwrite=overwrite),
    ):
        copies = [_jsonable(r, f"results[{i}]") for i, r in enumerate(items)]
        for result, stem in zip(copies, _stems(copies), strict=True):
            result["figures"] = write_result_figures(result, root, stem=stem)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        document = {VERSION_KEY: REPORT_VERSION, "created": created, "results": copies}
        with atomic_path(json_path, overwrite=overwrite) as staging:
            staging.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", "utf-8")
        with atomic_path(md_path, overwrite=overwrite) as staging:
            staging.write_text(render_markdown(document), encoding="utf-8")
    return md_path


# ---------------------------------------------------------------------------------------------
# markdown


def _cell(value: Any) -> str:
    """A value as one Markdown table cell (pipes escaped, nested values as compact JSON)."""
    if value is None:
        text = "n/a"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, Mapping | list):
        text = json.dumps(value, separators=(", ", ": "))
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _score(summary: Any) -> str:
    """``mean ± std`` of a metric summary, four decimals."""
    if not isinstance(summary, Mapping) or summary.get("mean") is None:
        return "n/a"
    std = summary.get("std")
    return f"{summary['mean']:.4f} ± {std:.4f}" if std is not None else f"{summary['mean']:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _key_values(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    return _table(["", ""], [[name, _cell(value)] for name, value in pairs])


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            pairs += _flatten(value, f"{name}.")
        else:
            pairs.append((name, value))
    return pairs


def _short_list(values: Sequence[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:_LIST_LIMIT])
    more = len(values) - _LIST_LIMIT
    return f"{shown}, … and {more} more" if more > 0 else shown


def _title(result: Mapping[str, Any]) -> str:
    model = (result.get("model") or {}).get("name", "encoder")
    return f"{result['benchmark']} · {result['protocol']} · {model}"


def _metric_names(result: Mapping[str, Any]) -> list[str]:
    """Metric names, the primary first, then the encoder's, then any only a baseline has."""
    names = list(result.get("metrics") or {})
    for baseline in (result.get("baselines") or {}).values():
        names += [n for n in (baseline.get("metrics") or {}) if n not in names]
    primary = result.get("primary")
    if not isinstance(primary, str) or primary not in names:
        return names
    return [primary, *(n for n in names if n != primary)]


def _result_markdown(result: Mapping[str, Any]) -> list[str]:
    lines = [f"## {_title(result)}", "", f"**Verdict:** {result.get('verdict', 'n/a')}", ""]
    seeds = list(result.get("seeds") or [])
    primary = result.get("primary")
    metrics = result.get("metrics") or {}
    baselines = result.get("baselines") or {}
    lines += [f"### Metrics (mean ± std over {len(seeds)} seed(s): {_short_list(seeds)})", ""]
    rows = []
    for name, summary in metrics.items():
        values = summary.get("values") if isinstance(summary, Mapping) else None
        label = f"{name} (primary)" if name == primary else name
        per_seed = ", ".join("n/a" if v is None else f"{v:.4f}" for v in values or [])
        rows.append([label, _score(summary), str(len(values or [])), per_seed])
    lines += [*_table(["metric", "mean ± std", "n seeds", "per seed"], rows), ""]
    if baselines:
        names = _metric_names(result)
        header = ["metric", f"encoder ({(result.get('model') or {}).get('name', '?')})"]
        header += [f"baseline {b}" for b in baselines]
        rows = []
        for name in names:
            cells = [metrics.get(name)]
            cells += [(b.get("metrics") or {}).get(name) for b in baselines.values()]
            scores = _row_cells(cells, _higher_is_better(name))
            rows.append([name, *(score or "n/a" for score in scores)])
        lines += ["### Encoder vs baselines (same units, same seeds; best in bold)", ""]
        lines += _table(header, rows)
        for bname, baseline in baselines.items():
            if baseline.get("config"):
                lines += ["", f"Config of baseline {bname}: {_cell(baseline['config'])}"]
        lines.append("")
    model = result.get("model") or {}
    lines += ["### Model", ""]
    lines += _key_values(
        [
            ("source", model.get("source")),
            ("name", model.get("name")),
            ("weights hash", model.get("weights_hash")),
            ("random init", model.get("random_init")),
            ("bands", ", ".join(model.get("bands") or [])),
            ("normalisation", model.get("normalization")),
        ]
    )
    data = result.get("data") or {}
    classes = list(data.get("classes") or [])
    skipped = list(data.get("skipped") or [])
    pairs: list[tuple[str, Any]] = [("root", data.get("root"))]
    pairs += [(f"size {split}", n) for split, n in (data.get("sizes") or {}).items()]
    pairs += [(f"checksum {split}", c) for split, c in (data.get("checksums") or {}).items()]
    pairs.append((f"classes ({len(classes)})", _short_list(classes)))
    pairs += [(f"cities {split}", ", ".join(c)) for split, c in (data.get("splits") or {}).items()]
    pairs.append((f"skipped ({len(skipped)})", _short_list(skipped) or "none"))
    lines += ["", "### Data", "", *_key_values(pairs), ""]
    sections = [
        ("Config", result.get("config")),
        ("Runtime (s)", result.get("runtime_s")),
        ("Throughput", result.get("throughput")),
        ("Versions", result.get("versions")),
        ("Machine", result.get("machine")),
        ("Extra", result.get("extra")),
    ]
    for heading, mapping in sections:
        if isinstance(mapping, Mapping) and mapping:
            lines += [f"### {heading}", "", *_key_values(_flatten(mapping)), ""]
    figures = result.get("figures") or {}
    if figures:
        lines += ["### Figures", ""]
        for name, relative in figures.items():
            lines += [f"![{name}]({relative})", ""]
    return lines


def render_markdown(document: Mapping[str, Any]) -> str:
    """The ``report.md`` text of a report document (``{version, created, results}``)."""
    results = list(document.get("results") or [])
    lines = ["# satmae evaluation report", ""]
    lines += [f"Created {document.get('created', '?')} (UTC); {len(results)} result(s).", ""]
    lines += [f"- **{_title(r)}**: {r.get('verdict', 'no verdict')}" for r in results]
    lines.append("")
    for result in results:
        lines += _result_markdown(result)
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# compare


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a ``report.json`` (or the folder that holds one).

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: naming the file, if it is not valid JSON, not a satmae report, of a newer
            report version, or its results are malformed.
    """
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no report at {path}; give a report.json or its folder")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); expected a report.json of satmae evaluate"
        ) from error
    if not isinstance(document, dict) or VERSION_KEY not in document:
        raise ValueError(
            f"{path} is not a satmae report (no {VERSION_KEY!r} key); expected a report.json "
            "written by satmae evaluate"
        )
    version = document[VERSION_KEY]
    if not isinstance(version, int) or not 1 <= version <= REPORT_VERSION:
        raise ValueError(
            f"{path} has report version {version!r}; this satmae reads versions 1 to "
            f"{REPORT_VERSION}: upgrade satmae to compare it"
        )
    results = document.get("results")
    if not isinstance(results, list) or not results:
        raise ValueError(f"{path} is malformed: 'results' must be a non-empty list")
    for index, result in enumerate(results):
        if not isinstance(result, dict) or not all(key in result for key in _REQUIRED):
            raise ValueError(
                f"{path} is malformed: result {index} needs {', '.join(_REQUIRED)} (as dicts)"
            )
        metrics = result["metrics"]
        if not isinstance(metrics, dict) or not all(isinstance(m, dict) for m in metrics.values()):
            raise ValueError(f"{path} is malformed: result {index} 'metrics' must map to dicts")
    return document


def _higher_is_better(metric: str) -> bool:
    return not any(word in metric.lower() for word in ("loss", "error", "rmse"))


def compare_reports(paths: Sequence[str | os.PathLike[str]]) -> str:
    """Side-by-side Markdown table of the metrics of several reports.

    One column per report and (model, protocol) in it, labelled ``model protocol`` (with the
    report's folder, then a number, appended where two labels would be equal); one row per
    (benchmark, metric) of the encoder, then per (benchmark, baseline, metric). Cells are
    ``mean ± std``; the best cell of a row with two or more values is bold. A report of another
    benchmark leaves its cells empty.

    Args:
        paths: ``report.json`` files, or the folders that hold them.

    Returns:
        The comparison as Markdown text: a header line per column (path, weights hash,
        seeds), then the table.

    Raises:
        ValueError: if fewer than one path is given, or a file is not a valid satmae report.
    """
    if not paths:
        raise ValueError("nothing to compare; give one or more report.json files")
    columns: list[dict[str, Any]] = []  # label, header, cells {(benchmark, row): summary}
    for path in paths:
        document = load_report(path)
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for result in document["results"]:
            model = result.get("model") or {}
            key = (str(model.get("name", "encoder")), str(result["protocol"]))
            column = groups.setdefault(
                key, {"path": Path(path), "model": model, "seeds": result.get("seeds"), "cells": {}}
            )
            benchmark = str(result["benchmark"])
            for metric, summary in result["metrics"].items():
                column["cells"].setdefault((benchmark, "", metric), summary)
            for bname, baseline in (result.get("baselines") or {}).items():
                for metric, summary in (baseline.get("metrics") or {}).items():
                    column["cells"].setdefault((benchmark, bname, metric), summary)
        for (name, protocol), column in groups.items():
            column["label"] = f"{name} {protocol}"
            columns.append(column)
    _disambiguate(columns)
    rows: list[tuple[str, str, str]] = []
    for column in columns:
        rows += [key for key in column["cells"] if key not in rows]
    benchmarks = list(dict.fromkeys(key[0] for key in rows))
    rows.sort(key=lambda key: (benchmarks.index(key[0]), key[1] != "", key[1]))
    lines = []
    for column in columns:
        model = column["model"]
        seeds = ", ".join(str(s) for s in column["seeds"] or []) or "?"
        lines.append(
            f"- **{column['label']}**: {column['path']}; weights "
            f"{model.get('weights_hash', '?')}; seeds {seeds}"
        )
    lines.append("")
    table_rows = []
    for benchmark, baseline, metric in rows:
        summaries = [column["cells"].get((benchmark, baseline, metric)) for column in columns]
        table_rows.append(
            [
                benchmark,
                f"{metric} [baseline {baseline}]" if baseline else metric,
                *_row_cells(summaries, _higher_is_better(metric)),
            ]
        )
    lines += _table(["benchmark", "metric", *(c["label"] for c in columns)], table_rows)
    lines += ["", "Cells: mean ± std over seeds; best per row in **bold**."]
    return "\n".join(lines) + "\n"


def _disambiguate(columns: list[dict[str, Any]]) -> None:
    """Make labels unique: append the report's folder, then a number, where labels repeat."""
    labels = [c["label"] for c in columns]
    for column in columns:
        if labels.count(column["label"]) > 1:
            folder = column["path"].resolve()
            folder = folder.parent if folder.suffix == ".json" else folder
            column["label"] = f"{column['label']} ({folder.name})"
    labels = [c["label"] for c in columns]
    seen: dict[str, int] = {}
    for column in columns:
        if labels.count(column["label"]) > 1:
            seen[column["label"]] = seen.get(column["label"], 0) + 1
            column["label"] = f"{column['label']} #{seen[column['label']]}"


def _row_cells(summaries: Sequence[Any], higher: bool) -> list[str]:
    means = [
        float(s["mean"]) if isinstance(s, Mapping) and s.get("mean") is not None else None
        for s in summaries
    ]
    known = [m for m in means if m is not None]
    best = (max(known) if higher else min(known)) if len(known) >= 2 else None
    cells = []
    for summary, mean in zip(summaries, means, strict=True):
        if summary is None:
            cells.append("")
        elif best is not None and mean == best:
            cells.append(f"**{_score(summary)}**")
        else:
            cells.append(_score(summary))
    return cells
