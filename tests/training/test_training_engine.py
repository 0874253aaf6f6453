"""The epoch engine: a fit interrupted after any epoch of any stage resumes to the uninterrupted result, bit for bit."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from zsadbench.errors import DataError, MethodError
from zsadbench.method import FitData
from zsadbench.store.checkpoints import EpochCheckpoints
from zsadbench.training import EpochTrainer, Stage, epoch_seed, targets
from zsadbench.types import Batch

from interrupts import FailingAfter, Interrupted

IMAGES = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 0, 1, 1, 0])


def batches(batch_size: int, shuffle: bool = False, seed: int = 0):
    order = torch.randperm(len(IMAGES), generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(6)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        yield Batch(image=IMAGES[index], category="toy", gt_label=LABELS[index])


def two_stage_fit(checkpoints: EpochCheckpoints | None, order: list[int] | None = None):
    """A two-stage fit with dropout (the RNG matters), a schedule and a module that only the second stage adds."""
    torch.manual_seed(0)
    first = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(48, 2))
    second = nn.Linear(2, 2)
    data = FitData("auxiliary", batches, len(IMAGES), "toy", seed=3, checkpoints=checkpoints)
    trainer = EpochTrainer(data, "Toy", total_epochs=5)

    def loss_one(batch: Batch) -> dict[str, torch.Tensor]:
        if order is not None:
            order.append(int(batch.gt_label.sum()))
        loss = nn.functional.cross_entropy(first(batch.image), batch.gt_label)
        return {"total": loss, "ce": loss}

    optimizer = torch.optim.SGD(first.parameters(), lr=0.5, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
    history = {"one": trainer.fit(Stage("one", 3, {"first": first}, optimizer, loss_one, batch_size=4, schedule=schedule))}

    def loss_two(batch: None) -> dict[str, torch.Tensor]:
        assert batch is None
        with torch.no_grad():
            hidden = first(IMAGES)
        return {"total": nn.functional.cross_entropy(second(hidden), LABELS)}

    extra = {"width": 2}
    optimizer2 = torch.optim.Adam(second.parameters(), lr=0.1)
    history["two"] = trainer.fit(Stage("two", 2, {"first": first, "second": second}, optimizer2, loss_two, extra=extra))
    return first, second, history, trainer


@pytest.mark.parametrize("stop", [1, 2, 3, 4])
def test_a_fit_stopped_after_any_epoch_resumes_to_the_uninterrupted_result(tmp_path, stop):
    whole_first, whole_second, whole_history, _ = two_stage_fit(None)
    checkpoints = FailingAfter(tmp_path / "ckpt", stop)
    with pytest.raises(Interrupted):
        two_stage_fit(checkpoints)
    assert checkpoints.latest()[0] == stop
    first, second, history, trainer = two_stage_fit(checkpoints)
    assert trainer.done == stop
    for got, want in ((first, whole_first), (second, whole_second)):
        for key, value in want.state_dict().items():
            assert torch.equal(got.state_dict()[key], value), key
    assert history == whole_history
    assert [h["epoch"] for h in history["one"]] == [1, 2, 3] and [h["epoch"] for h in history["two"]] == [4, 5]
    assert checkpoints.latest()[0] == 5


def test_resumed_epochs_are_the_only_ones_run_and_see_the_same_batches(tmp_path):
    whole: list[int] = []
    two_stage_fit(None, whole)
    checkpoints = FailingAfter(tmp_path / "ckpt", 2)
    before: list[int] = []
    with pytest.raises(Interrupted):
        two_stage_fit(checkpoints, before)
    after: list[int] = []
    two_stage_fit(checkpoints, after)
    assert len(before) == 4 and len(after) == 2  # two batches per epoch: epochs 1-2, then epoch 3 only
    assert before + after == whole


def test_extra_values_come_back_from_the_checkpoint(tmp_path):
    checkpoints = FailingAfter(tmp_path / "ckpt", 4)
    with pytest.raises(Interrupted):
        two_stage_fit(checkpoints)
    data = FitData("auxiliary", batches, 6, "toy", checkpoints=checkpoints)
    trainer = EpochTrainer(data, "Toy", 5)
    assert trainer.saved("width") == 2 and trainer.saved("absent", 7) == 7
    assert trainer.resumes_after(3) and not trainer.resumes_after(4)


def test_epoch_seeds_differ_by_epoch_and_by_seed():
    seeds = {epoch_seed(s, e) for s in range(3) for e in range(5)}
    assert len(seeds) == 15 and epoch_seed(1, 2) == epoch_seed(1, 2)


def _one_stage(data: FitData, value: float) -> Stage:
    weight = nn.Parameter(torch.ones(1))
    module = nn.Module()
    module.weight = weight
    return Stage("only", 2, {"m": module}, torch.optim.SGD([weight], lr=0.1),
                 lambda batch: {"total": weight.sum() * value}, batch_size=2)


def test_a_non_finite_loss_stops_the_fit_naming_the_method_stage_and_epoch():
    data = FitData("auxiliary", batches, 6, "toy")
    with pytest.raises(MethodError, match=r"Toy loss is nan \(only, epoch 1\)"):
        EpochTrainer(data, "Toy", 2).fit(_one_stage(data, float("nan")))


def test_no_batches_is_a_data_error_naming_the_dataset():
    data = FitData("auxiliary", lambda *a, **k: iter(()), 0, "empty_set")
    with pytest.raises(DataError, match="empty_set"):
        EpochTrainer(data, "Toy", 2).fit(_one_stage(data, 1.0))


def test_an_unreadable_checkpoint_is_removed_and_the_fit_starts_over(tmp_path):
    checkpoints = EpochCheckpoints(tmp_path / "ckpt")
    checkpoints.path.parent.mkdir(parents=True)
    checkpoints.path.write_bytes(b"not a checkpoint")
    data = FitData("auxiliary", batches, 6, "toy", checkpoints=checkpoints)
    with pytest.warns(RuntimeWarning, match=f"training checkpoint {checkpoints.path} cannot be read"):
        trainer = EpochTrainer(data, "Toy", 2)
    assert trainer.done == 0 and not checkpoints.path.exists()
    assert len(trainer.fit(_one_stage(data, 1.0))) == 2 and checkpoints.latest()[0] == 2


@pytest.mark.parametrize("damage", [b"", b"garbage" * 40, None])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_and_ends_the_same(tmp_path, damage):
    whole_first, whole_second, whole_history, _ = two_stage_fit(None)
    checkpoints = FailingAfter(tmp_path / "ckpt", 3)
    with pytest.raises(Interrupted):
        two_stage_fit(checkpoints)
    raw = checkpoints.path.read_bytes()
    checkpoints.path.write_bytes(raw[: len(raw) // 2] if damage is None else damage)  # truncated, empty, garbage
    with pytest.warns(RuntimeWarning, match="last.pt cannot be read"):
        first, second, history, trainer = two_stage_fit(checkpoints)
    assert trainer.done == 2  # resumed from previous.pt, epoch 2
    for got, want in ((first, whole_first), (second, whole_second)):
        for key, value in want.state_dict().items():
            assert torch.equal(got.state_dict()[key], value), key
    assert history == whole_history and checkpoints.latest()[0] == 5


def test_a_checkpoint_of_another_layout_is_not_resumed(tmp_path):
    checkpoints = EpochCheckpoints(tmp_path / "ckpt")
    checkpoints.save(3, {"prompts": {}, "history": []})
    with pytest.warns(UserWarning, match="another layout"):
        trainer = EpochTrainer(FitData("auxiliary", batches, 6, "toy", checkpoints=checkpoints), "Toy", 2)
    assert trainer.done == 0


def test_targets_binarise_masks_and_refuse_masks_of_another_size():
    mask = torch.tensor([[[0.2, 0.7], [0.5, 1.0]]])
    masks, labels = targets(Batch(image=torch.zeros(1, 3, 2, 2), category="c", gt_label=torch.tensor([1]),
                                  gt_mask=mask), 2, "cpu", "Toy")
    assert masks.tolist() == [[[0.0, 1.0], [0.0, 1.0]]] and labels.tolist() == [1]
    masks, _ = targets(Batch(image=torch.zeros(1, 3, 2, 2), category="c", gt_label=torch.tensor([0])), 2, "cpu", "Toy")
    assert masks.shape == (1, 2, 2) and not masks.any()
    with pytest.raises(MethodError, match="input size"):
        targets(Batch(image=torch.zeros(1, 3, 4, 4), category="c", gt_label=torch.tensor([1]), gt_mask=mask), 4, "cpu",
                "Toy")
    with pytest.raises(DataError, match="gt_label"):
        targets(Batch(image=torch.zeros(1, 3, 2, 2), category="c"), 2, "cpu", "Toy")
