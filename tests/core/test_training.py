"""The training loop: determinism from the seed, the schedule, early stopping that keeps the best weights."""
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from workflow_scripts.core.training import TrainingConfig, linear_schedule, predict_logits, train

VOCAB = 50


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=2)
    return BertForSequenceClassification(config)


def toy_dataset(n=64, length=8, seed=0):
    """Label = whether token 7 occurs: learnable, so the loss must fall."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, length), generator=generator)
    return [{"input_ids": row, "attention_mask": torch.ones(length, dtype=torch.long),
             "labels": torch.tensor(int((row == 7).any()))} for row in ids]


def collate(rows):
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}


def run(seed=0, epochs=2, **overrides):
    model = tiny_classifier()
    config = TrainingConfig(epochs=epochs, learning_rate=1e-3, batch_size=16, seed=seed, **overrides)
    history = train(model, toy_dataset(), config, collate)
    return model, history


def test_same_seed_same_losses_and_predictions():
    (first, first_history), (second, second_history) = run(seed=1), run(seed=1)
    assert first_history.losses == second_history.losses
    data = toy_dataset(seed=9)
    assert (predict_logits(first, data, 32, collate) == predict_logits(second, data, 32, collate)).all()
    _, other_history = run(seed=2)
    assert other_history.losses != first_history.losses


def test_loss_falls_on_a_learnable_task():
    _, history = run(epochs=8)
    assert sum(history.losses[-4:]) < sum(history.losses[:4])


def test_linear_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = linear_schedule(optimizer, total_steps=10, warmup_steps=2)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert rates[-1] == pytest.approx(0.125) and all(a >= b for a, b in zip(rates[2:], rates[3:]))


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    scripted_scores = iter([0.5, 0.7, 0.6, 0.65, 0.1, 0.9])
    snapshots = {}

    def selection_score(model):
        step = len(snapshots) + 1
        snapshots[step] = {k: v.clone() for k, v in model.state_dict().items()}
        return next(scripted_scores)

    model = tiny_classifier()
    config = TrainingConfig(epochs=20, learning_rate=1e-3, batch_size=16, evaluate_every_steps=1, patience=3)
    history = train(model, toy_dataset(), config, collate, selection_score=selection_score)
    assert [score for _, score in history.selection_scores] == [0.5, 0.7, 0.6, 0.65, 0.1]
    assert history.stopped_early and history.best_step == 2 and len(history.losses) == 5
    assert all(torch.equal(value, snapshots[2][key]) for key, value in model.state_dict().items())
