"""End-to-end fine-tuning of an encoder with a linear head on its pooled features.

A copy of the encoder is trained (the caller's stays untouched) with AdamW, layer-wise
learning-rate decay (block ``i`` of ``depth`` gets ``lr * decay^(depth - i)``; the tokenizer
and cls token get ``lr * decay^(depth + 1)``; the final norms and the head get ``lr``), a linear
warm-up then cosine schedule, and stochastic depth. The copy whose validation score (top-1 or
micro-mAP) is best is kept in memory and scores the test split. No data augmentation, so the
protocol stays cheap enough for a CPU.

Stochastic depth: the model's blocks have none, so each block of the copy is wrapped in
:class:`DropPathBlock`, which drops the whole residual update ``block(x) - x`` per sample with
a probability rising linearly from 0 (first block) to ``drop_path`` (last).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from satmae.data import collate_samples
from satmae.eval.features import fit_to_encoder
from satmae.eval.metrics import multilabel_metrics
from satmae.models.encoder import SatMAEEncoder


class DropPathBlock(nn.Module):
    """A transformer block whose residual update is dropped per sample during training.

    Args:
        block: the wrapped block, called as ``block(x, attn_mask)``.
        drop_prob: probability of skipping the block for a sample.
    """

    def __init__(self, block: nn.Module, drop_prob: float) -> None:
        super().__init__()
        self.block = block
        self.drop_prob = drop_prob

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``(B, N, D) -> (B, N, D)``; the update is rescaled by ``1 / keep`` when kept."""
        out: Tensor = self.block(x, attn_mask)
        if not self.training or self.drop_prob == 0.0:
            return out
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        kept = x.new_empty(shape).bernoulli_(keep) / keep  # (B, 1, 1)
        return x + (out - x) * kept


class FinetuneModel(nn.Module):
    """An encoder and a linear head on its mean-pooled features."""

    def __init__(self, encoder: SatMAEEncoder, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.num_features, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)

    def forward(self, batch: dict[str, Any]) -> Tensor:
        """A raw-reflectance batch -> logits ``(B, K)``."""
        features = self.encoder(batch)
        logits: Tensor = self.head(features.pooled)
        return logits


@dataclass
class FinetuneResult:
    """What fine-tuning produced.

    Attributes:
        scores: ``(N_test, K)`` probabilities of the best-validation model on the test split.
        labels: the test labels, ``(N_test,)`` or ``(N_test, K)``.
        best_epoch: the epoch (from 1) whose weights were kept.
        val_scores: validation top-1 or micro-mAP after each epoch.
        train_losses: mean training loss of each epoch.
    """

    scores: Tensor
    labels: Tensor
    best_epoch: int
    val_scores: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)


def param_groups(
    model: FinetuneModel, lr: float, layer_decay: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups with layer-wise lr decay; no weight decay on biases and norms."""
    depth = len(model.encoder.blocks)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("encoder.blocks."):
            layer = int(name.split(".")[2]) + 1
        elif name.startswith(("encoder.tokenizer", "encoder.cls_token")):
            layer = 0
        else:
            layer = depth + 1  # final norms and the head
        decay = parameter.ndim > 1 and "cls_token" not in name
        key = (layer, decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": lr * layer_decay ** (depth + 1 - layer),
                "weight_decay": weight_decay if decay else 0.0,
            }
        groups[key]["params"].append(parameter)
    for group in groups.values():
        group["base_lr"] = group["lr"]
    return list(groups.values())


def _schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _loader(
    dataset: Dataset[dict[str, Any]], batch_size: int, shuffle: bool, seed: int
) -> DataLoader[dict[str, Any]]:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_samples,
        generator=generator,
    )


def _batches(
    loader: DataLoader[dict[str, Any]], progress: bool, what: str
) -> Iterator[dict[str, Any]]:
    yield from tqdm(loader, desc=what, disable=not progress, leave=False)


@torch.no_grad()
def _predict(
    model: FinetuneModel,
    dataset: Dataset[dict[str, Any]],
    batch_size: int,
    multilabel: bool,
    progress: bool,
) -> tuple[Tensor, Tensor]:
    model.eval()
    scores, labels = [], []
    for batch in _batches(_loader(dataset, batch_size, False, 0), progress, "predict"):
        logits = model(fit_to_encoder(batch, model.encoder)).float().cpu()
        scores.append(logits.sigmoid() if multilabel else logits.softmax(dim=1))
        labels.append(batch["label"])
    return torch.cat(scores), torch.cat(labels)


def _validation_score(scores: Tensor, labels: Tensor, multilabel: bool) -> float:
    if multilabel:
        return float(multilabel_metrics(scores, labels)["map_micro"])
    return float((scores.argmax(dim=1) == labels.long()).float().mean())


def finetune(
    encoder: SatMAEEncoder,
    train: Dataset[dict[str, Any]],
    val: Dataset[dict[str, Any]],
    test: Dataset[dict[str, Any]],
    *,
    num_classes: int,
    multilabel: bool,
    epochs: int = 10,
    lr: float = 1e-3,
    layer_decay: float = 0.75,
    drop_path: float = 0.1,
    weight_decay: float = 0.05,
    warmup_epochs: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune a copy of ``encoder`` with a linear head; score the test split.

    Args:
        encoder: the pretrained encoder (not modified).
        train: training samples (the sample contract, with ``label``).
        val: validation samples; the best epoch on them is kept.
        test: test samples to score.
        num_classes: K.
        multilabel: per-class BCE and sigmoid instead of softmax cross-entropy.
        epochs: passes over ``train``.
        lr: learning rate of the head (the base of the layer-wise decay).
        layer_decay: lr factor per block towards the input.
        drop_path: stochastic-depth rate of the last block.
        weight_decay: AdamW weight decay (not on biases, norms and the cls token).
        warmup_epochs: epochs of linear warm-up.
        batch_size: samples per step.
        seed: seeds the head's init, the shuffling and stochastic depth.
        progress: show progress bars.

    Returns:
        the test scores of the best-validation model and the training history.

    Raises:
        ValueError: for non-positive ``epochs`` or ``batch_size``.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    torch.manual_seed(seed)
    device = encoder.cls_token.device
    copied = copy.deepcopy(encoder)
    depth = len(copied.blocks)
    for index, block in enumerate(copied.blocks):
        rate = drop_path * index / max(1, depth - 1)
        copied.blocks[index] = DropPathBlock(block, rate)
    model = FinetuneModel(copied, num_classes).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, lr, layer_decay, weight_decay))
    loader = _loader(train, batch_size, True, seed)
    total = epochs * len(loader)
    warmup = min(total, max(1, round(warmup_epochs * len(loader))))
    best_state: dict[str, Tensor] | None = None
    result = FinetuneResult(torch.zeros(0), torch.zeros(0), best_epoch=0)
    best = -math.inf
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for batch in _batches(loader, progress, f"finetune epoch {epoch}/{epochs}"):
            factor = _schedule(step, total, warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            logits = model(fit_to_encoder(batch, model.encoder))
            labels = batch["label"].to(device)
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, labels.float())
            else:
                loss = F.cross_entropy(logits, labels.long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
        result.train_losses.append(sum(losses) / max(1, len(losses)))
        scores, labels = _predict(model, val, batch_size, multilabel, progress)
        score = _validation_score(scores, labels, multilabel)
        result.val_scores.append(score)
        if score > best:
            best, result.best_epoch = score, epoch
            best_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    result.scores, result.labels = _predict(model, test, batch_size, multilabel, progress)
    return result
