"""Training the change network on random windows of the training cities.

Each city is prepared once (bands by name, the model's normalisation), then every step draws
windows from it with flips and 90° rotations. Half of the windows are centred on a random
change pixel: change is ~1-5 % of OSCD pixels, so uniform windows would show the network
little of it. The loss is :func:`~satmae.eval.change.model.change_loss`; AdamW with warm-up
and a cosine decay; the encoder, when fine-tuned, learns at a tenth of the decoder's rate
with layer-wise decay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from satmae.eval.change.model import ChangeNet, change_loss
from satmae.models.inputs import ModelInputs


@dataclass(frozen=True)
class FitConfig:
    """How the change network is trained.

    Attributes:
        steps: optimiser steps.
        batch_size: windows per step.
        lr: peak learning rate of the decoder.
        encoder_lr_scale: the encoder's peak rate relative to ``lr`` (fine-tuning only).
        layer_decay: each earlier encoder block learns this much slower than the next.
        weight_decay: AdamW weight decay.
        warmup: fraction of steps of linear warm-up.
        change_fraction: fraction of windows centred on a change pixel.
        max_pos_weight: cap of the BCE weight of change pixels (the inverse change rate).
    """

    steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    encoder_lr_scale: float = 0.1
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    warmup: float = 0.05
    change_fraction: float = 0.5
    max_pos_weight: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return asdict(self)


@dataclass
class PreparedCity:
    """One city ready for window draws.

    Attributes:
        image: ``(2, C, H, W)`` normalised, in the model's band order.
        times: ``(2,)`` or ``None``.
        mask: ``(H, W)`` float 1 = change.
        valid: ``(H, W)`` bool, valid on both dates.
        change: ``(K, 2)`` row/column of the change pixels.
        bands: names of the ``C`` channels.
    """

    image: Tensor
    times: Tensor | None
    mask: Tensor
    valid: Tensor
    change: Tensor
    bands: tuple[str, ...]


def prepare_city(net: ChangeNet, sample: Mapping[str, Any]) -> PreparedCity:
    """Normalise a city sample once for training.

    Raises:
        ValueError: for a city without a change mask.
    """
    if "mask" not in sample:
        raise ValueError(f"city {sample.get('location', '?')} has no change mask to train on")
    inputs = net.prepare(dict(sample))
    mask = torch.as_tensor(sample["mask"]).reshape(inputs.image.shape[-2:]).float()
    valid = torch.as_tensor(sample["valid"]).all(dim=0)
    return PreparedCity(
        image=inputs.image[0],
        times=None if inputs.times is None else inputs.times[0],
        mask=mask,
        valid=valid,
        change=torch.nonzero(mask > 0),
        bands=tuple(inputs.bands or ()),
    )


def draw_windows(
    cities: Sequence[PreparedCity],
    count: int,
    size: int,
    generator: torch.Generator,
    change_fraction: float = 0.5,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Random augmented windows of the cities, drawn in proportion to their area.

    Returns:
        image ``(N, 2, C, s, s)``, times ``(N, 2)`` (or ``None``), mask and valid
        ``(N, 1, s, s)``.
    """
    areas = torch.tensor([float(c.mask.numel()) for c in cities])
    picks = torch.multinomial(areas, count, replacement=True, generator=generator)
    images, times, masks, valids = [], [], [], []
    for pick in picks.tolist():
        city = cities[pick]
        height, width = city.mask.shape
        centred = len(city.change) and torch.rand((), generator=generator) < change_fraction
        if centred:
            row, col = city.change[torch.randint(len(city.change), (), generator=generator)]
            top = int(row) - torch.randint(size, (), generator=generator).item()
            left = int(col) - torch.randint(size, (), generator=generator).item()
        else:
            top = int(torch.randint(max(1, height - size + 1), (), generator=generator))
            left = int(torch.randint(max(1, width - size + 1), (), generator=generator))
        top = min(max(0, top), max(0, height - size))
        left = min(max(0, left), max(0, width - size))
        window = (slice(top, top + size), slice(left, left + size))
        parts = [city.image[..., window[0], window[1]], city.mask[window], city.valid[window]]
        turns = int(torch.randint(4, (), generator=generator))
        flip = bool(torch.randint(2, (), generator=generator))
        parts = [_augment(part, turns, flip) for part in parts]
        images.append(parts[0])
        masks.append(parts[1])
        valids.append(parts[2])
        if city.times is not None:
            times.append(city.times)
    return (
        torch.stack(images),
        torch.stack(times) if times else None,
        torch.stack(masks).unsqueeze(1),
        torch.stack(valids).unsqueeze(1),
    )


def _augment(x: Tensor, turns: int, flip: bool) -> Tensor:
    x = torch.rot90(x, turns, dims=(-2, -1))
    return x.flip(-1) if flip else x


def _param_groups(net: ChangeNet, config: FitConfig) -> list[dict[str, Any]]:
    """Decoder at ``lr``; encoder blocks with layer-wise decay when fine-tuning."""
    decoder = [p for n, p in net.named_parameters() if not n.startswith("encoder.")]
    groups: list[dict[str, Any]] = [{"params": decoder, "lr_scale": 1.0}]
    if net.config.finetune:
        depth = len(net.encoder.blocks)
        for name, param in net.encoder.named_parameters():
            if not param.requires_grad:
                continue
            layer = int(name.split(".")[1]) + 1 if name.startswith("blocks.") else 0
            if not name.startswith(("blocks.", "tokenizer.", "cls_token")):
                layer = depth
            scale = config.encoder_lr_scale * config.layer_decay ** (depth - layer)
            groups.append({"params": [param], "lr_scale": scale})
    return groups


def fit_change(
    net: ChangeNet,
    cities: Sequence[Mapping[str, Any]],
    config: FitConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``net`` on windows of ``cities`` (two-date samples with ``mask``).

    Returns:
        the loss of every step.

    Raises:
        ValueError: for no cities, or cities without a change mask.
    """
    config = config or FitConfig()
    if not cities:
        raise ValueError("no training cities to fit the change network on")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    prepared = [prepare_city(net, city) for city in cities]
    changed = sum(float(c.mask[c.valid].sum()) for c in prepared)
    total = sum(float(c.valid.sum()) for c in prepared)
    rate = max(changed / max(total, 1.0), 1e-6)
    # Windows centred on change over-represent it; weight by the rate the network sees.
    seen = config.change_fraction * 0.5 + (1 - config.change_fraction) * rate
    pos_weight = min(config.max_pos_weight, (1 - seen) / seen)
    groups = _param_groups(net, config)
    for group in groups:
        group["lr"] = config.lr * group["lr_scale"]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    warmup = max(1, int(config.warmup * config.steps))
    size = int(net.encoder.config.img_size[0])
    losses: list[float] = []
    net.train()
    if not net.config.finetune:
        net.encoder.eval()
    bar = tqdm(range(config.steps), desc="change head", disable=not progress, leave=False)
    for step in bar:
        factor = (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))
        )
        for group in optimizer.param_groups:
            group["lr"] = config.lr * group["lr_scale"] * factor
        image, times, mask, valid = draw_windows(
            prepared, config.batch_size, size, generator, config.change_fraction
        )
        logits = net(ModelInputs(image, times, prepared[0].bands))
        loss = change_loss(logits, mask, valid, pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    net.eval()
    return losses
