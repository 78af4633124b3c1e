"""Reports of satmae evaluate: report.json / report.md, figures, --compare, machine facts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from satmae.eval.figures import confusion_matrix_figure, per_class_figure, write_result_figures
from satmae.eval.report import (
    REPORT_VERSION,
    VERSION_KEY,
    compare_reports,
    load_report,
    satmae_info_dict,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _summary(values: list[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}


def _model(name: str = "satmae_tiny", weights_hash: str = "sha256:abc123") -> dict[str, Any]:
    return {
        "source": "registry",
        "name": name,
        "weights_hash": weights_hash,
        "random_init": True,
        "bands": ["B02", "B03", "B04"],
        "normalization": "s2_l2a",
    }


def classification_result(top1: list[float], name: str = "satmae_tiny") -> dict[str, Any]:
    """A EuroSAT linear-probe result with three classes and a confusion matrix."""
    return {
        "benchmark": "eurosat",
        "task": "classification",
        "protocol": "linear",
        "model": _model(name, weights_hash=f"sha256:{name}"),
        "data": {
            "root": "/data/eurosat",
            "sizes": {"train": 30, "val": 9, "test": 12},
            "checksums": {"train": "c0ffee", "test": "beef01"},
            "classes": ["Forest", "River", "SeaLake"],
            "skipped": [],
        },
        "config": {"c": 1.0, "max_iter": 100},
        "seeds": list(range(len(top1))),
        "metrics": {"top1": _summary(top1), "f1_macro": _summary([0.5] * len(top1))},
        "primary": "top1",
        "baselines": {
            "raw_bands": {"metrics": {"top1": _summary([0.61] * len(top1))}, "config": {"k": 5}}
        },
        "verdict": "satmae_tiny beats raw_bands on top1: 0.7000 vs 0.6100",
        "per_class": {
            "names": ["Forest", "River", "SeaLake"],
            "f1": [0.9, 0.4, 0.7],
            "precision": [0.9, 0.5, 0.6],
            "recall": [0.9, 0.3, 0.8],
        },
        "confusion": [[4, 0, 0], [1, 2, 1], [0, 1, 3]],
        "runtime_s": {"features": 1.5, "probe": 0.25, "baselines": 0.1, "total": 2.0},
        "throughput": {"features_per_s": 34.0},
        "versions": {"satmae": "0.1", "torch": "2.5", "torchgeo": "0.8.1", "timm": "1.0"},
        "machine": {"cpu_model": "Test CPU", "threads": 2, "device": "cpu"},
    }


def multilabel_result() -> dict[str, Any]:
    result = classification_result([0.3])
    del result["confusion"]
    result.update(
        benchmark="bigearthnet",
        task="multilabel",
        protocol="knn",
        primary="map_micro",
        metrics={"map_micro": _summary([0.42]), "f1_micro": _summary([0.38])},
        baselines={"raw_bands": {"metrics": {"map_micro": _summary([0.45])}, "config": {}}},
        verdict="satmae_tiny does not beat raw_bands on map_micro: 0.4200 vs 0.4500",
    )
    return result


def change_result(out_dir: Path) -> dict[str, Any]:
    """An OSCD result whose change maps were drawn elsewhere and are listed in figures."""
    figure = out_dir / "figures" / "oscd_change_map.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_bytes(PNG_SIGNATURE)
    return {
        "benchmark": "oscd",
        "task": "change",
        "protocol": "siamese-frozen",
        "model": _model(),
        "data": {
            "root": "/data/oscd",
            "sizes": {"train": 2, "val": 0, "test": 1},
            "checksums": {"train": "aa", "test": "bb"},
            "classes": ["no change", "change"],
            "splits": {"train": ["aguasclaras", "bercy"], "test": ["beirut"]},
            "skipped": ["cupertino: missing B10"],
        },
        "config": {"epochs": 1},
        "seeds": [0],
        "metrics": {"change_f1": _summary([0.25]), "change_iou": _summary([0.14])},
        "primary": "change_f1",
        "baselines": {"cva": {"metrics": {"change_f1": _summary([0.2])}, "config": {}}},
        "verdict": "satmae_tiny beats cva on change_f1: 0.2500 vs 0.2000",
        "figures": {"change_map_beirut": "figures/oscd_change_map.png"},
        "extra": {"per_city": {"beirut": {"change_f1": 0.25}}},
    }


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 100


def test_classification_report(tmp_path: Path) -> None:
    result = classification_result([0.7, 0.72, 0.68])
    before = copy.deepcopy(result)
    md_path = write_report(result, tmp_path)
    assert md_path == tmp_path / "report.md"
    document = json.loads((tmp_path / "report.json").read_text())
    assert document[VERSION_KEY] == REPORT_VERSION
    assert document["created"].endswith("Z")
    stored = document["results"][0]
    assert {k: v for k, v in stored.items() if k != "figures"} == result
    assert set(stored["figures"]) == {"confusion", "per_class_f1"}
    for relative in stored["figures"].values():
        assert _is_png(tmp_path / relative)
    text = md_path.read_text()
    first_lines = text.splitlines()[:6]
    assert any(result["verdict"] in line for line in first_lines)
    assert "| top1 (primary) | 0.7000 ± 0.0163 | 3 | 0.7000, 0.7200, 0.6800 |" in text
    assert "| top1 | **0.7000 ± 0.0163** | 0.6100 ± 0.0000 |" in text
    assert "| weights hash | sha256:satmae_tiny |" in text
    assert "| checksum test | beef01 |" in text
    assert "| threads | 2 |" in text
    assert "![confusion](figures/eurosat_linear_confusion.png)" in text
    assert result == before  # the caller's dict is left as it was


def test_multilabel_and_change_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    change = change_result(out)
    md_path = write_report([multilabel_result(), change], out)
    document = json.loads((out / "report.json").read_text())
    multilabel, stored_change = document["results"]
    assert set(multilabel["figures"]) == {"per_class_f1"}  # no confusion for multi-label
    assert _is_png(out / multilabel["figures"]["per_class_f1"])
    assert stored_change["figures"] == change["figures"]
    text = md_path.read_text()
    assert "does not beat raw_bands on map_micro" in text.splitlines()[4]
    assert "beats cva on change_f1" in text.splitlines()[5]
    assert "| map_micro | 0.4200 ± 0.0000 | **0.4500 ± 0.0000** |" in text
    assert "| f1_micro | 0.3800 ± 0.0000 | n/a |" in text
    assert "| cities test | beirut |" in text
    assert "cupertino: missing B10" in text
    assert "| per_city.beirut.change_f1 | 0.25 |" in text
    assert "![change_map_beirut](figures/oscd_change_map.png)" in text


def test_overwrite_refused_unless_asked(tmp_path: Path) -> None:
    write_report(classification_result([0.7]), tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_report(classification_result([0.8]), tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["results"][0]["metrics"]["top1"][
        "mean"
    ] == pytest.approx(0.7)
    write_report(classification_result([0.8]), tmp_path, overwrite=True)
    stored = json.loads((tmp_path / "report.json").read_text())["results"][0]
    assert stored["metrics"]["top1"]["mean"] == pytest.approx(0.8)


def test_never_replaces_a_non_file(tmp_path: Path) -> None:
    (tmp_path / "report.md").mkdir()
    with pytest.raises(FileExistsError, match="not a regular file"):
        write_report(classification_result([0.7]), tmp_path, overwrite=True)
    assert (tmp_path / "report.md").is_dir()
    assert not (tmp_path / "report.json").exists()


def test_invalid_results_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks metrics"):
        write_report(
            {"benchmark": "eurosat", "task": "classification", "protocol": "knn"}, tmp_path
        )
    bad = classification_result([0.7])
    bad["config"] = {"device": object()}
    with pytest.raises(TypeError, match=r"results\[0\]\.config\.device"):
        write_report(bad, tmp_path)


def test_numpy_values_and_nan_are_stored_as_json(tmp_path: Path) -> None:
    result = classification_result([0.7])
    result["per_class"]["f1"] = np.array([0.9, float("nan"), 0.7])
    result["config"]["batch_size"] = np.int64(8)
    write_report(result, tmp_path)
    stored = json.loads((tmp_path / "report.json").read_text())["results"][0]
    assert stored["per_class"]["f1"] == [0.9, None, 0.7]
    assert stored["config"]["batch_size"] == 8


def test_compare_two_reports(tmp_path: Path) -> None:
    write_report(classification_result([0.7, 0.72], name="satmae_tiny"), tmp_path / "a")
    write_report(classification_result([0.8, 0.84], name="satmae_base"), tmp_path / "b")
    write_report(multilabel_result(), tmp_path / "c")
    table = compare_reports([tmp_path / "a" / "report.json", tmp_path / "b", tmp_path / "c"])
    lines = table.splitlines()
    assert "**satmae_tiny linear**" in lines[0] and "sha256:satmae_tiny" in lines[0]
    assert "seeds 0, 1" in lines[0]
    header = next(line for line in lines if line.startswith("| benchmark"))
    assert (
        header
        == "| benchmark | metric | satmae_tiny linear | satmae_base linear | satmae_tiny knn |"
    )
    top1 = next(line for line in lines if line.startswith("| eurosat | top1 |"))
    assert top1 == "| eurosat | top1 | 0.7100 ± 0.0100 | **0.8200 ± 0.0200** |  |"
    baseline = next(line for line in lines if "top1 [baseline raw_bands]" in line)
    assert baseline.count("**0.6100 ± 0.0000**") == 2  # a tie marks both
    mlabel = next(line for line in lines if line.startswith("| bigearthnet | map_micro |"))
    assert mlabel == "| bigearthnet | map_micro |  |  | 0.4200 ± 0.0000 |"  # one value: no mark


def test_compare_disambiguates_equal_labels(tmp_path: Path) -> None:
    write_report(classification_result([0.7]), tmp_path / "run1")
    write_report(classification_result([0.9]), tmp_path / "run2")
    table = compare_reports([tmp_path / "run1", tmp_path / "run2"])
    assert "| satmae_tiny linear (run1) | satmae_tiny linear (run2) |" in table


def test_compare_rejects_non_reports(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match=r"other\.json is not a satmae report"):
        compare_reports([other])
    broken = tmp_path / "broken.json"
    broken.write_text('{"satmae_report_version": 1, ')
    with pytest.raises(ValueError, match=r"broken\.json is not valid JSON"):
        compare_reports([broken])
    malformed = tmp_path / "malformed.json"
    malformed.write_text(json.dumps({VERSION_KEY: 1, "results": [{"benchmark": "x"}]}))
    with pytest.raises(ValueError, match=r"malformed\.json is malformed"):
        load_report(malformed)
    with pytest.raises(FileNotFoundError, match="missing"):
        compare_reports([tmp_path / "missing.json"])


def test_figures_are_pngs(tmp_path: Path) -> None:
    confusion = confusion_matrix_figure(
        [[5, 1], [0, 0]], ["a", "b"], tmp_path / "cm.png"
    )  # an empty row is drawn, not divided by zero
    assert _is_png(confusion)
    bars = per_class_figure(
        {"names": ["a", "b", "c"], "f1": [0.1, 0.5, 0.9]},
        tmp_path / "bars.png",
        baseline={"names": ["a", "c"], "f1": [0.2, 0.3]},
    )
    assert _is_png(bars)
    with pytest.raises(ValueError, match="2 classes but 3 class names"):
        confusion_matrix_figure([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_figure([[1, 0, 0], [0, 1, 0]], ["a", "b"], tmp_path / "x.png")


def test_write_result_figures_uses_a_baseline_with_per_class(tmp_path: Path) -> None:
    result = classification_result([0.7])
    result["baselines"]["raw_bands"]["per_class"] = {"names": ["Forest"], "f1": [0.5]}
    figures = write_result_figures(result, tmp_path, stem="x")
    assert figures == {
        "confusion": "figures/x_confusion.png",
        "per_class_f1": "figures/x_per_class_f1.png",
    }
    assert all(_is_png(tmp_path / relative) for relative in figures.values())


def test_satmae_info_dict() -> None:
    from satmae.cli.info import collect_info

    info = satmae_info_dict()
    reference = collect_info()
    assert info["threads"] == reference["cpu"]["threads"]
    assert info["cpu_capability"] == reference["cpu"]["capability"]
    assert info["cpu_bf16"] == reference["cpu"]["bf16"]
    assert info["torch"] == reference["packages"]["torch"]
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert info["device"].split(" ")[0] in ("cpu", "cuda", "mps")
    json.dumps(info)  # goes into report.json as is
