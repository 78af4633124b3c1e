"""Sin-cos and time encodings against the official golden values (reference §11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import torch

from satmae.models.encodings import (
    civil_from_seconds,
    index_encoding,
    spatial_encoding,
    time_encoding,
    time_encoding_from_values,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("dim", "grid", "total"),
    [
        (768, 12, 52052.347727),  # group_c ViT-L pos_embed
        (512, 12, 34653.164725),  # group_c ViT-B pos_embed
        (384, 12, 25953.455922),  # group_c decoder pos
        (640, 14, 57967.303180),  # temporal encoder pos
        (320, 14, 28900.937675),  # temporal decoder pos
    ],
)
def test_spatial_table_sums_match_official(dim, grid, total):
    table = spatial_encoding(dim, grid, grid, CPU)  # the cls row of the official table is zero
    assert table.shape == (grid * grid, dim)
    assert table.double().sum().item() == pytest.approx(total, abs=1e-3)


def test_spatial_table_is_x_first():
    table = spatial_encoding(768, 12, 12, CPU)
    assert table.abs().double().sum().item() == pytest.approx(61499.906198, abs=1e-3)
    token = table[1 * 12 + 2]  # row 1, column 2
    torch.testing.assert_close(
        token[:4], torch.tensor([0.909297, 0.944237, 0.969836, 0.987046]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        token[384:388], torch.tensor([0.841471, 0.815251, 0.788593, 0.761720]), atol=1e-6, rtol=0
    )


def test_spatial_table_non_square_and_cached():
    table = spatial_encoding(64, 3, 5, CPU)
    assert table.shape == (15, 64)
    assert spatial_encoding(64, 3, 5, CPU) is table
    # column index drives the first half: tokens in the same column share it
    torch.testing.assert_close(table[0, :32], table[5, :32])
    assert not torch.allclose(table[0, :32], table[1, :32])


@pytest.mark.parametrize(
    ("dim", "count", "total", "absolute"),
    [(256, 3, 404.265470, 406.072959), (128, 4, 267.139449, None)],
)
def test_group_table_sums_match_official(dim, count, total, absolute):
    table = index_encoding(dim, count, CPU)
    assert table.double().sum().item() == pytest.approx(total, abs=1e-4)
    if absolute is not None:
        assert table.abs().double().sum().item() == pytest.approx(absolute, abs=1e-4)


def test_time_code_golden_values():
    code = time_encoding_from_values(torch.tensor([[14, 5, 11]]), 384)[0]
    assert code.double().sum().item() == pytest.approx(163.140908, abs=1e-4)
    assert code.abs().double().sum().item() == pytest.approx(218.840791, abs=1e-4)
    torch.testing.assert_close(
        code[:4], torch.tensor([0.990607, -0.428534, -0.878990, 0.327291]), atol=1e-6, rtol=0
    )
    assert code[64].item() == pytest.approx(0.136737, abs=1e-6)


def test_time_code_from_epoch_seconds_uses_satmae_fields():
    moment = datetime(2016, 6, 15, 11, 42, tzinfo=UTC)
    seconds = torch.tensor([[int(moment.timestamp())]])
    code = time_encoding(seconds, ("years_since_2002", "month0", "hour"), 384)
    assert code.double().sum().item() == pytest.approx(163.140908, abs=1e-4)


def test_calendar_fields_match_datetime():
    start = datetime(1969, 12, 1, tzinfo=UTC)
    moments = [start + timedelta(days=37 * k + 0.3 * k, hours=k % 24) for k in range(1200)]
    moments += [datetime(2000, 2, 29, 23, tzinfo=UTC), datetime(2100, 3, 1, tzinfo=UTC)]
    seconds = torch.tensor([int(m.timestamp()) for m in moments])
    civil = civil_from_seconds(seconds)
    for index, moment in enumerate(moments):
        assert civil["year"][index] == moment.year
        assert civil["month"][index] == moment.month
        assert civil["day"][index] == moment.day
        assert civil["hour"][index] == moment.hour
        assert civil["day_of_year"][index] == moment.timetuple().tm_yday - 1
