import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from satmae.data import collate_samples
from satmae.eval.benchmarks import open_split
from satmae.eval.classification import evaluate_classification
from satmae.eval.features import extract_features, fit_to_encoder, raw_band_features
from satmae.eval.finetune import DropPathBlock, finetune
from satmae.models import create_model
from satmae.models.encoder import SatMAEEncoder
from tests.eval.fakes import write_fake_bigearthnet_v1, write_fake_eurosat

CLASSES = ("Forest", "River", "SeaLake")
DATE = "2018-06-15"
MODEL_INFO = {"source": "registry", "name": "satmae_tiny", "random_init": True}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids oversubscribing a shared CPU (10x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def eurosat_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eurosat")
    write_fake_eurosat(root, per_class=2, classes=CLASSES)
    return root


@pytest.fixture(scope="module")
def bigearthnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bigearthnet")
    write_fake_bigearthnet_v1(root, n=4)
    return root


@pytest.fixture(scope="module")
def encoder() -> SatMAEEncoder:
    torch.manual_seed(0)
    return create_model("satmae_tiny").encoder.eval()


def check_result(result: dict[str, Any], primary: str) -> None:
    json.dumps(result)  # JSON-serialisable
    assert result["primary"] == primary
    metric = result["metrics"][primary]
    assert set(metric) == {"mean", "std", "values"}
    assert len(metric["values"]) == len(result["seeds"])
    baseline = result["baselines"]["raw-band mean/std"]
    assert primary in baseline["metrics"]
    assert primary in result["verdict"]
    assert set(result["data"]["sizes"]) == {"train", "val", "test"}
    assert all(len(value) == 16 for value in result["data"]["checksums"].values())
    assert result["model"]["weights_hash"]
    assert result["model"]["name"] == "satmae_tiny"
    assert len(result["per_class"]["f1"]) == len(result["data"]["classes"])
    assert set(result["runtime_s"]) == {"features", "probe", "baselines", "total"}
    assert set(result["versions"]) == {"satmae", "torch", "torchgeo", "timm", "python"}


@pytest.mark.parametrize("protocol", ["knn", "linear"])
def test_frozen_protocols_on_eurosat(
    encoder: SatMAEEncoder, eurosat_root: Path, protocol: str
) -> None:
    result = evaluate_classification(
        encoder,
        "eurosat",
        eurosat_root,
        protocol,
        seeds=(0, 1),
        date=DATE,
        progress=False,
        model_info=MODEL_INFO,
    )
    check_result(result, "top1")
    assert result["task"] == "classification"
    assert result["protocol"] == protocol
    assert result["data"]["sizes"] == {"train": 6, "val": 6, "test": 6}
    assert len(result["confusion"]) == len(CLASSES)
    assert sum(map(sum, result["confusion"])) == 6
    assert result["throughput"]["features_per_s"] > 0
    # The fake classes differ in spectrum: the raw-band baseline separates them.
    assert result["baselines"]["raw-band mean/std"]["metrics"]["top1"]["mean"] >= 0.8


def test_finetune_protocol_on_eurosat(encoder: SatMAEEncoder, eurosat_root: Path) -> None:
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    result = evaluate_classification(
        encoder,
        "eurosat",
        eurosat_root,
        "finetune",
        date=DATE,
        progress=False,
        finetune_options={"epochs": 1, "batch_size": 4},
        model_info=MODEL_INFO,
    )
    check_result(result, "top1")
    assert result["config"]["epochs"] == 1
    assert result["config"]["best_epoch"] == [1]
    assert result["baselines"]["raw-band mean/std"]["config"]["protocol"] == "linear"
    for key, value in encoder.state_dict().items():  # the caller's encoder is untouched
        torch.testing.assert_close(value, before[key])


def test_linear_protocol_on_bigearthnet(encoder: SatMAEEncoder, bigearthnet_root: Path) -> None:
    result = evaluate_classification(
        encoder,
        "bigearthnet",
        bigearthnet_root,
        "linear",
        date=DATE,
        progress=False,
        model_info=MODEL_INFO,
    )
    check_result(result, "map_micro")
    assert result["task"] == "multilabel"
    assert {"map_micro", "map_macro", "f1_micro", "f1_macro"} <= set(result["metrics"])
    assert "confusion" not in result
    assert len(result["per_class"]["names"]) == 19


def test_finetune_multilabel_returns_probabilities(
    encoder: SatMAEEncoder, bigearthnet_root: Path
) -> None:
    splits = [open_split("bigearthnet", bigearthnet_root, s, date=DATE) for s in ("train", "val")]
    outcome = finetune(
        encoder,
        splits[0],
        splits[1],
        splits[1],
        num_classes=19,
        multilabel=True,
        epochs=1,
        batch_size=4,
        progress=False,
    )
    assert outcome.scores.shape == (4, 19)
    assert ((outcome.scores >= 0) & (outcome.scores <= 1)).all()
    assert outcome.labels.shape == (4, 19)


def test_drop_path_block_skips_updates_per_sample() -> None:
    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
            return x + 1

    torch.manual_seed(0)
    block = DropPathBlock(AddOne(), drop_prob=0.5)
    x = torch.zeros(64, 3, 2)
    out = block(x)
    per_sample = out[:, 0, 0]
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and rescaled
    assert (out == out[:, :1, :1]).all()  # one decision per sample
    block.eval()
    torch.testing.assert_close(block(x), x + 1)


def test_feature_cache_is_reused(
    encoder: SatMAEEncoder, eurosat_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = open_split("eurosat", eurosat_root, "test", date=DATE)
    first = extract_features(encoder, split, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    assert files[0].name.endswith("-mean.safetensors")
    assert not first.cached

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr(SatMAEEncoder, "embed", fail)
    again = extract_features(encoder, split, cache_dir=tmp_path, progress=False)
    assert again.cached
    assert torch.equal(again.features, first.features)
    assert torch.equal(again.labels, first.labels)
    assert again.ids == first.ids == split.ids


def test_raw_band_features_are_band_mean_and_std(eurosat_root: Path) -> None:
    split = open_split("eurosat", eurosat_root, "val")
    features = raw_band_features(split, progress=False)
    assert features.features.shape == (6, 26)
    image = split[0]["image"][0].double()  # (C, H, W)
    expected = torch.cat([image.mean(dim=(1, 2)), image.std(dim=(1, 2), unbiased=False)])
    torch.testing.assert_close(features.features[0].double(), expected, rtol=1e-5, atol=1e-3)


def test_images_are_fitted_to_the_encoder(eurosat_root: Path) -> None:
    split = open_split("eurosat", eurosat_root, "val", date=DATE)
    batch = collate_samples([split[0], split[1]])  # 64 x 64 pixels
    sincos = create_model("satmae_tiny").encoder
    assert fit_to_encoder(batch, sincos)["image"].shape[-2:] == (64, 64)  # native size
    cropped = fit_to_encoder(
        {**batch, "image": batch["image"][..., :60, :60], "valid": batch["valid"][..., :60, :60]},
        sincos,
    )
    assert cropped["image"].shape[-2:] == (56, 56)
    assert cropped["valid"].shape[-2:] == (56, 56)
    learned = create_model("satmae_tiny", encoding="learned").encoder.eval()
    resized = fit_to_encoder(batch, learned)
    assert resized["image"].shape == (2, 1, 13, 32, 32)
    assert resized["valid"].shape == (2, 1, 32, 32)
    embedding = learned.embed(resized)
    assert isinstance(embedding, torch.Tensor)
    assert embedding.shape == (2, learned.num_features)


def test_temporal_model_without_date_is_refused(encoder: SatMAEEncoder, eurosat_root: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"model satmae_tiny is temporal and EuroSAT has no dates; pass --date YYYY-MM-DD",
    ):
        evaluate_classification(encoder, "eurosat", eurosat_root, "knn", progress=False)


def test_non_temporal_model_needs_no_date(eurosat_root: Path) -> None:
    encoder = create_model("satmae_tiny", time_fields=()).encoder.eval()
    result = evaluate_classification(encoder, "eurosat", eurosat_root, "knn", progress=False)
    assert result["data"]["date"] is None


def test_model_lacking_a_band_is_refused(bigearthnet_root: Path) -> None:
    groups = (("B02", "B03", "B04", "B10"),)
    encoder = create_model("satmae_tiny", normalization="s2_l1c", band_groups=groups).encoder
    with pytest.raises(ValueError, match=r"needs bands \['B10'\] that BigEarthNet lacks"):
        evaluate_classification(encoder, "bigearthnet", bigearthnet_root, "knn", date=DATE)


def test_unknown_benchmark_and_protocol(encoder: SatMAEEncoder, eurosat_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark 'x'; known: eurosat"):
        evaluate_classification(encoder, "x", eurosat_root, "knn", date=DATE)
    with pytest.raises(ValueError, match="unknown protocol 'svm'"):
        evaluate_classification(encoder, "eurosat", eurosat_root, "svm", date=DATE)
    with pytest.raises(ValueError, match=r"satmae\.eval\.change"):
        evaluate_classification(encoder, "oscd", eurosat_root, "knn", date=DATE)
    with pytest.raises(ValueError, match="unknown fine-tuning options"):
        evaluate_classification(
            encoder,
            "eurosat",
            eurosat_root,
            "finetune",
            date=DATE,
            finetune_options={"epoch": 1},
        )


def test_missing_data_is_a_file_not_found_error(encoder: SatMAEEncoder, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"eurosat-train\.txt"):
        evaluate_classification(encoder, "eurosat", tmp_path / "none", "knn", date=DATE)
