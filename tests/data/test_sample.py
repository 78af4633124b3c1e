"""collate_samples checks the sample contract (DESIGN §3) of everything it stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satmae.data.sample import collate_samples, validate_sample

BANDS = ("B02", "B03", "B04")


def make_sample(frames: int = 2, size: int = 4, seed: int = 0) -> dict[str, object]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(frames, len(BANDS), size, size, generator=g) * 10000,
        "times": torch.arange(frames, dtype=torch.int64) * 86400,
        "bands": BANDS,
        "valid": torch.rand(frames, size, size, generator=g) > 0.2,
        "location": f"place-{seed}",
    }


def without(sample: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in sample.items() if k != key}


def test_collate_stacks_a_valid_batch():
    samples = [make_sample(seed=0), make_sample(seed=1)]
    batch = collate_samples(samples)
    assert batch["image"].shape == (2, 2, 3, 4, 4) and batch["image"].dtype == torch.float32
    assert torch.equal(batch["image"][1], samples[1]["image"])
    assert torch.equal(batch["valid"][0], samples[0]["valid"])
    assert batch["times"].tolist() == [[0, 86400], [0, 86400]]
    assert batch["bands"] == BANDS and batch["location"] == ["place-0", "place-1"]
    assert "frame_mask" not in batch


def test_collate_accepts_undated_samples_without_validity():
    samples = [without(without(make_sample(seed=s), "times"), "valid") for s in range(2)]
    batch = collate_samples(samples)
    assert set(batch) == {"image", "bands", "location"}


# One broken sample (index 1) per case, and what the error must say: index, key, expected,
# given, and how to fix it.
@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            lambda s: dict(s, image=s["image"].to(torch.int32)),
            r"sample 1 of the batch: 'image' must be a tensor of dtype float, got torch.int32; "
            r"convert it with image.float\(\)",
        ),
        (
            lambda s: dict(s, image=s["image"].numpy()),
            r"sample 1 .*'image' must be a tensor of dtype float, got ndarray",
        ),
        (
            lambda s: dict(s, image=s["image"][0]),
            r"sample 1 .*expected image of shape \(T, C, H, W\), got \(3, 4, 4\); .*image\[None\]",
        ),
        (
            lambda s: without(s, "image"),
            r"sample 1 .*has no 'image'; keys are",
        ),
        (
            lambda s: without(s, "bands"),
            r"sample 1 .*has no 'bands'",
        ),
        (
            lambda s: dict(s, bands="B02,B03,B04"),
            r"sample 1 .*'bands' must be a tuple of band names, got str",
        ),
        (
            lambda s: dict(s, bands=("b2", "B03", "B04")),
            r"sample 1 .*'bands' must use canonical names: expected \('B02', 'B03', 'B04'\), "
            r"got \('b2', 'B03', 'B04'\); translate them with satmae.bands.canonical_bands",
        ),
        (
            lambda s: dict(s, bands=("B02", "B03", "B99")),
            r"sample 1 .*unknown Sentinel-2 band 'B99'",
        ),
        (
            lambda s: dict(s, bands=("B02", "B03")),
            r"sample 1 .*image has 3 channels but bands names 2: .*name each channel",
        ),
        (
            lambda s: dict(s, times=s["times"].to(torch.int32)),
            r"sample 1 .*'times' must be a tensor of dtype int64, got torch.int32; "
            r"convert it with torch.as_tensor\(times, dtype=torch.int64\)",
        ),
        (
            lambda s: dict(s, times=s["times"][:1]),
            r"sample 1 .*expected times of shape \(2,\), one per frame of image, got \(1,\)",
        ),
        (
            lambda s: dict(s, valid=s["valid"].to(torch.uint8)),
            r"sample 1 .*'valid' must be a tensor of dtype bool, got torch.uint8; "
            r"convert it with valid != 0",
        ),
        (
            lambda s: dict(s, valid=s["valid"][:, :2]),
            r"sample 1 .*expected valid of shape \(2, 4, 4\) to match image, got \(2, 2, 4\)",
        ),
    ],
)
def test_collate_names_the_sample_that_breaks_the_contract(broken, message):
    with pytest.raises(ValueError, match=message):
        collate_samples([make_sample(seed=0), broken(make_sample(seed=1)), make_sample(seed=2)])


def test_collate_rejects_samples_with_different_bands():
    other = dict(make_sample(seed=2), bands=("B04", "B03", "B02"))
    with pytest.raises(
        ValueError,
        match=r"sample 2 of the batch names bands \('B04', 'B03', 'B02'\) but sample 0 names "
        r"\('B02', 'B03', 'B04'\); select the same bands in the same order for every sample",
    ):
        collate_samples([make_sample(seed=0), make_sample(seed=1), other])


def test_collate_rejects_images_of_different_sizes():
    with pytest.raises(
        ValueError,
        match=r"sample 1 of the batch has an image of \(8, 8\) pixels \(H, W\) but sample 0 has "
        r"\(4, 4\); read or crop every sample to one size",
    ):
        collate_samples([make_sample(size=4), make_sample(size=8, seed=1)])


@pytest.mark.parametrize("key", ["times", "valid"])
@pytest.mark.parametrize("missing_in", [0, 1])
def test_collate_needs_times_and_valid_in_all_samples_or_none(key, missing_in):
    samples = [make_sample(seed=0), make_sample(seed=1)]
    samples[missing_in] = without(samples[missing_in], key)
    has = 1 - missing_in
    with pytest.raises(
        ValueError,
        match=rf"sample {has} of the batch has '{key}' but sample {missing_in} has none; "
        rf"give '{key}' to every sample of a batch or to none",
    ):
        collate_samples(samples)


def test_collate_needs_the_first_samples_keys_in_every_sample():
    with pytest.raises(
        ValueError, match=r"sample 1 of the batch lacks \['location'\] that sample 0 has"
    ):
        collate_samples([make_sample(seed=0), without(make_sample(seed=1), "location")])


def test_collate_still_pads_series_of_different_lengths():
    batch = collate_samples([make_sample(frames=3), make_sample(frames=1, seed=1)])
    assert batch["image"].shape == (2, 3, 3, 4, 4)
    assert batch["frame_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert not batch["valid"][1, 1:].any() and batch["times"][1].tolist() == [0, 0, 0]


def test_validate_sample_checks_dtypes_like_collate():
    sample = make_sample()
    validate_sample(sample)
    with pytest.raises(
        ValueError, match=r"'image' must be a tensor of dtype float, got torch.uint16"
    ):
        validate_sample(dict(sample, image=torch.from_numpy(np.zeros((2, 3, 4, 4), np.uint16))))


def test_collate_rejects_an_empty_batch_and_unstackable_extras():
    with pytest.raises(ValueError, match=r"cannot collate an empty list of samples"):
        collate_samples([])
    labels = [dict(make_sample(seed=s), label=torch.zeros(s + 1)) for s in range(2)]
    with pytest.raises(
        ValueError, match=r"cannot stack 'label' of different shapes \[\(1,\), \(2,\)\]"
    ):
        collate_samples(labels)
