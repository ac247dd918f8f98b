"""The training loop: determinism from the seed, the schedule, early stopping that keeps the best weights, the
fine-tune equal to the textbook PyTorch loop, gradient accumulation, resume equal to an uninterrupted run."""
import math

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from workflow_scripts.core.training import (EarlyStopping, TrainingConfig, build_optimizer, linear_schedule,
                                            make_loader, predict_logits, restore_trainer_state, run_training,
                                            seed_everything, train, trainer_state)

VOCAB = 50


def tiny_classifier(seed=0, dropout=0.1):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=2, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config)


def training_config(**overrides) -> TrainingConfig:
    """params.yaml's finetune defaults (every field is required in code)."""
    values = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 16, "weight_decay": 0.0, "warmup_ratio": 0.0,
              "max_grad_norm": 1.0, "adam_epsilon": 1e-8, "seed": 0, "evaluate_every_steps": 0, "patience": 0}
    return TrainingConfig(**{**values, **overrides})


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
    config = training_config(epochs=epochs, seed=seed, **overrides)
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
    config = training_config(epochs=20, evaluate_every_steps=1, patience=3)
    history = train(model, toy_dataset(), config, collate, selection_score=selection_score)
    assert [score for _, score in history.selection_scores] == [0.5, 0.7, 0.6, 0.65, 0.1]
    assert history.stopped_early and history.best_step == 2 and len(history.losses) == 5
    assert all(torch.equal(value, snapshots[2][key]) for key, value in model.state_dict().items())


def models_equal(first, second) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_the_fine_tune_is_the_textbook_pytorch_loop_bit_for_bit():
    """The reference: AdamW groups, linear warm-up and decay, clipping, in the order run_glue.py does them."""
    config = training_config(epochs=2, warmup_ratio=0.25, weight_decay=0.01, seed=3)
    model = tiny_classifier()
    history = train(model, toy_dataset(), config, collate)

    reference = tiny_classifier()
    seed_everything(config.seed)
    loader = make_loader(toy_dataset(), config.batch_size, collate, shuffle=True, seed=config.seed)
    total = config.epochs * len(loader)
    optimizer = build_optimizer(reference, config.learning_rate, config.weight_decay, config.adam_epsilon)
    scheduler = linear_schedule(optimizer, total, math.ceil(config.warmup_ratio * total))
    reference.train()
    losses = []
    for _ in range(config.epochs):
        for batch in loader:
            loss = reference(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reference.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    assert history.losses == losses
    assert models_equal(model, reference)


def test_two_accumulated_half_batches_equal_one_whole_batch():
    no_dropout = dict(dropout=0.0)
    whole, halves = tiny_classifier(**no_dropout), tiny_classifier(**no_dropout)
    config = training_config(epochs=2, batch_size=16)
    whole_history = train(whole, toy_dataset(n=56), config, collate)  # 56 rows: the last batch splits 4 + 4
    halves_history = train(halves, toy_dataset(n=56), config, collate, grad_accumulation=2)
    assert halves_history.losses == pytest.approx(whole_history.losses, rel=1e-5)
    for name, value in whole.state_dict().items():
        assert torch.allclose(value, halves.state_dict()[name], atol=1e-5), name


def test_count_normalized_losses_accumulate_to_the_whole_batch_gradient():
    """KD's normalization: a summed loss over the step's total count (3, 2, 2 per micro-batch)."""
    weights = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.constant_(weights.weight, 0.5)
    rows = torch.arange(36.0).reshape(6, 2, 3) / 10          # 6 examples, 2 positions each
    counted = torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1], [0, 1], [1, 0]])  # positions that count

    def loss_fn(model, batch, normalizer):
        return (model(batch["x"]).squeeze(-1) ** 2 * batch["mask"]).sum() / normalizer

    gradients = []
    for accumulation in (1, 3):
        model = torch.nn.Linear(3, 1, bias=False)
        model.load_state_dict(weights.state_dict())
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        run_training(model, [{"x": rows, "mask": counted}], loss_fn, optimizer, total_steps=1,
                     grad_accumulation=accumulation, count_fn=lambda batch: batch["mask"].sum())
        gradients.append(weights.weight - model.weight)
    assert torch.allclose(gradients[0], gradients[1], atol=1e-7)


def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path):
    """Dropout on: the random state must travel with the checkpoint, as the optimizer and schedule do."""
    batches = [collate(toy_dataset(n=16, seed=step)) for step in range(10)]

    def start():
        model = tiny_classifier()
        optimizer = build_optimizer(model, 1e-3, 0.01)
        return model, optimizer, linear_schedule(optimizer, 10, 2)

    def loss_fn(model, batch):
        return model(**batch).loss

    torch.manual_seed(5)
    model, optimizer, scheduler = start()
    model.train()
    uninterrupted = run_training(model, batches, loss_fn, optimizer, scheduler=scheduler, total_steps=10,
                                 max_grad_norm=1.0)

    torch.manual_seed(5)
    first, optimizer, scheduler = start()
    first.train()
    part = run_training(first, batches[:4], loss_fn, optimizer, scheduler=scheduler, total_steps=4, max_grad_norm=1.0)
    torch.save({"model": first.state_dict(), **trainer_state(4, optimizer, scheduler)}, tmp_path / "state.pt")
    torch.rand(100)  # whatever runs in between must not matter

    resumed, optimizer, scheduler = start()
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    resumed.load_state_dict(state["model"])
    step = restore_trainer_state(state, optimizer, scheduler)
    resumed.train()
    rest = run_training(resumed, batches[step:], loss_fn, optimizer, scheduler=scheduler, total_steps=10,
                        start_step=step, max_grad_norm=1.0)
    assert part.losses + rest.losses == uninterrupted.losses
    assert models_equal(resumed, model)


def test_early_stopping_is_a_callback_of_the_step_loop():
    model = tiny_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights never change: no score gains
    stopper = EarlyStopping(model, lambda m: 0.5, every_steps=2, patience=2)
    history = run_training(model, [collate(toy_dataset(n=4))] * 20, lambda m, b: m(**b).loss, optimizer,
                           total_steps=20, callbacks=[stopper])
    assert [step for step, _ in history.selection_scores] == [2, 4, 6] and len(history.losses) == 6
    assert history.stopped_early and history.best_step == 2
