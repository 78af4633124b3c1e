from collections.abc import Iterator

import pytest
import torch

from satmae.eval.features import FeatureSet
from satmae.eval.metrics import classification_metrics, multilabel_metrics, summarize
from satmae.eval.probes import knn_probe, linear_probe, select_weight_decay


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids oversubscribing a shared CPU (10x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def feature_set(features: list[list[float]], labels: list[int] | list[list[int]]) -> FeatureSet:
    values = torch.tensor(features, dtype=torch.float32)
    targets = torch.tensor(labels)
    targets = targets.float() if targets.ndim == 2 else targets.long()
    return FeatureSet(values, targets, tuple(str(i) for i in range(len(features))))


def test_knn_majority_vote_by_cosine_similarity() -> None:
    # Directions matter, not lengths: [10, 0] is as close to [1, 0] as [1, 0] itself.
    train = feature_set([[10, 0], [1, 0.1], [0, 1], [0.1, 1], [1, 1]], [0, 0, 1, 1, 2])
    test = feature_set([[1, 0], [0, 5]], [0, 1])
    scores = knn_probe(train, test, k=3, num_classes=3)
    assert scores.shape == (2, 3)
    assert scores.argmax(dim=1).tolist() == [0, 1]
    # Test 0: neighbours [10,0], [1,0.1] (class 0) and [1,1] (class 2): 2/3 and 1/3 of votes.
    assert scores[0, 0] == pytest.approx(2 / 3, abs=0.1)
    assert scores[0, 1] == 0.0


def test_knn_tie_goes_to_the_nearest_neighbour() -> None:
    train = feature_set([[1, 0.3], [1, 0], [1, -0.6], [1, 0.05]], [1, 0, 1, 0])
    test = feature_set([[1, 0.02]], [0])
    # k=4: two votes each; the nearest ([1, 0.05]) is class 0.
    assert knn_probe(train, test, k=4).argmax(dim=1).tolist() == [0]
    # The same votes with the nearest neighbour in class 1.
    swapped = feature_set([[1, 0.3], [1, 0], [1, -0.6], [1, 0.05]], [0, 1, 0, 1])
    assert knn_probe(swapped, test, k=4).argmax(dim=1).tolist() == [1]


def test_knn_multilabel_scores_are_neighbour_fractions() -> None:
    train = feature_set([[1, 0], [1, 0.1], [0, 1]], [[1, 1, 0], [1, 0, 0], [0, 0, 1]])
    test = feature_set([[1, 0.05]], [[1, 0, 0]])
    scores = knn_probe(train, test, k=2, multilabel=True)
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.5, 0.0]]))


def test_knn_batches_and_caps_k() -> None:
    generator = torch.Generator().manual_seed(0)
    train = FeatureSet(torch.randn(7, 4, generator=generator), torch.arange(7) % 2, ())
    test = FeatureSet(torch.randn(5, 4, generator=generator), torch.arange(5) % 2, ())
    whole = knn_probe(train, test, k=20)
    torch.testing.assert_close(knn_probe(train, test, k=20, batch_size=2), whole)
    with pytest.raises(ValueError, match="k must be at least 1"):
        knn_probe(train, test, k=0)


def separable(seed: int, count: int, classes: int = 4) -> FeatureSet:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    centres = torch.eye(classes, 16) * 4.0 + 100.0  # offset: standardisation must handle it
    features = centres[labels] + torch.randn(count, 16, generator=generator)
    return FeatureSet(features, labels, tuple(str(i) for i in range(count)))


def test_linear_probe_learns_separable_data() -> None:
    train, val, test = separable(0, 80), separable(1, 40), separable(2, 40)
    scores = linear_probe(train, test, multilabel=False, val=val, max_iter=100)
    assert scores.shape == (40, 4)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(40))
    assert classification_metrics(scores, test.labels)["top1"] >= 0.95


def test_linear_probe_is_deterministic_and_chooses_on_held_out_train() -> None:
    train, test = separable(0, 60), separable(2, 20)
    first = linear_probe(train, test, multilabel=False, max_iter=50, seed=3)
    again = linear_probe(train, test, multilabel=False, max_iter=50, seed=3)
    torch.testing.assert_close(first, again)


def test_weight_decay_selection_reports_every_strength() -> None:
    train, val = separable(0, 40), separable(1, 20)
    chosen, scores = select_weight_decay(
        train, val, multilabel=False, weight_decays=(1e-4, 10.0), max_iter=50
    )
    assert set(scores) == {1e-4, 10.0}
    assert chosen in scores
    assert scores[chosen] == max(scores.values())


def test_linear_probe_multilabel() -> None:
    base = separable(0, 60, classes=3)
    targets = torch.nn.functional.one_hot(base.labels, 3).float()
    targets[:, 2] = (base.labels == 0).float()  # class 2 co-occurs with class 0
    train = FeatureSet(base.features, targets, base.ids)
    scores = linear_probe(train, train, multilabel=True, weight_decay=1e-3, max_iter=100)
    assert ((scores > 0.5).float() == targets).float().mean() >= 0.95


def test_multilabel_metrics_hand_computed() -> None:
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.1, 0.3]])
    targets = torch.tensor([[1, 0], [0, 1], [0, 0]])
    result = multilabel_metrics(scores, targets)
    # Pairs ranked: 0.9 (+), 0.8 (-), 0.7 (+), ...: AP = (1/1 + 2/3) / 2.
    assert result["map_micro"] == pytest.approx(5 / 6)
    assert result["map_macro"] == pytest.approx(1.0)
    # Threshold 0.5: TP 2, FP 1, FN 0 -> micro F1 0.8; class F1s 2/3 and 1.
    assert result["f1_micro"] == pytest.approx(0.8)
    assert result["f1"] == pytest.approx([2 / 3, 1.0])
    assert result["f1_macro"] == pytest.approx(5 / 6)


def test_multilabel_macro_map_skips_classes_without_positives() -> None:
    scores = torch.tensor([[0.9, 0.5], [0.2, 0.4]])
    targets = torch.tensor([[1, 0], [0, 0]])
    assert multilabel_metrics(scores, targets)["map_macro"] == pytest.approx(1.0)


def test_classification_metrics_hand_computed() -> None:
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = torch.tensor([0, 1, 1, 2])
    result = classification_metrics(scores, labels)
    assert result["top1"] == pytest.approx(0.75)
    assert "top5" not in result
    assert result["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert result["precision"] == pytest.approx([0.5, 1.0, 1.0])
    assert result["recall"] == pytest.approx([1.0, 0.5, 1.0])
    assert result["f1"] == pytest.approx([2 / 3, 2 / 3, 1.0])


def test_top5_for_many_classes() -> None:
    scores = torch.eye(6)[[1, 2]] + torch.tensor([0.0, 0.5, 0.4, 0.3, 0.2, 0.1])
    labels = torch.tensor([0, 5])
    result = classification_metrics(scores, labels)
    assert result["top1"] == 0.0
    # Sample 0 ranks class 0 last (6th); sample 1 ranks class 5 fifth.
    assert result["top5"] == pytest.approx(0.5)


def test_summarize() -> None:
    assert summarize([0.5]) == {"mean": 0.5, "std": 0.0, "values": [0.5]}
    summary = summarize([1.0, 3.0])
    assert summary["mean"] == 2.0
    assert summary["std"] == 1.0
    with pytest.raises(ValueError, match="at least one seed"):
        summarize([])
