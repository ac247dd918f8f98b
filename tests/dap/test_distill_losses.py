"""TinyBERT's distillation losses: hand-computed values, the layer mapping, the captured attention scores against
eager attention's probabilities, and head pairing of a pruned student."""
import copy
import math

import pytest
import torch
import transformers

from workflow_scripts.core.surgery import prune_heads
from workflow_scripts.distill.losses import (AttentionScores, attention_loss, head_pairs, hidden_loss, layer_mapping,
                                             soft_cross_entropy)
from workflow_scripts.core.training import OptimizationConfig
from workflow_scripts.distill.task_distillation import DistillLosses, distill

torch.set_num_threads(1)


def tiny_classifier(layers: int = 2, hidden: int = 16, heads: int = 4, seed: int = 0, attention: str = "eager"):
    config = transformers.BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=24, num_labels=2,
                                     initializer_range=0.3, attn_implementation=attention)
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification(config).eval()


def inputs() -> dict:
    input_ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 8, 0, 0]])
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


def test_layer_mapping_uniform_top_bottom():
    assert layer_mapping(4, 12) == [3, 6, 9, 12]  # TinyBERT-4L from BERT-base: g(m) = 3m
    assert layer_mapping(4, 12, "top") == [9, 10, 11, 12]
    assert layer_mapping(4, 12, "bottom") == [1, 2, 3, 4]
    assert layer_mapping(6, 6) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="multiple"):
        layer_mapping(4, 6)
    with pytest.raises(ValueError, match="cannot map"):
        layer_mapping(7, 6)


def test_attention_loss_masks_padding_by_hand():
    mask = torch.tensor([[1, 1], [1, 0]])
    student = torch.zeros(2, 1, 2, 2)
    teacher = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[5.0, 100.0], [100.0, 100.0]]]])
    # valid pairs: all 4 of row 0 (1 + 4 + 9 + 16) and only (0, 0) of row 1 (25): 55 over 5 entries
    assert attention_loss(student, teacher, mask).item() == pytest.approx(55 / 5)


def test_hidden_loss_masks_padding_by_hand():
    mask = torch.tensor([[1, 0]])
    student = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]])
    teacher = torch.tensor([[[0.0, 3.0], [0.0, 0.0]]])
    assert hidden_loss(student, teacher, mask).item() == pytest.approx((1 + 4) / 2)


def test_soft_cross_entropy_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax: 0.75, 0.25
    assert soft_cross_entropy(student, teacher).item() == pytest.approx(math.log(2))
    # at temperature 2 the teacher's target flattens to softmax(log(3)/2, 0)
    target = torch.softmax(torch.tensor([math.log(3) / 2, 0.0]), 0)
    expected = -(target * torch.log_softmax(torch.tensor([1.0, 0.0]) / 2, 0)).sum()
    assert soft_cross_entropy(torch.tensor([[1.0, 0.0]]), teacher, 2.0).item() == pytest.approx(expected.item())


def test_captured_scores_are_eager_attentions_logits():
    model = tiny_classifier()
    batch = inputs()
    with AttentionScores(model) as capture, torch.no_grad():
        probabilities = model(**batch, output_attentions=True).attentions
        scores = capture.per_layer()
    additive = (1 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    for layer_scores, layer_probabilities in zip(scores, probabilities):
        torch.testing.assert_close(torch.softmax(layer_scores + additive, -1), layer_probabilities)


def test_pruned_student_heads_pair_by_original_id():
    teacher = tiny_classifier()
    student = copy.deepcopy(teacher)
    prune_heads(student, {0: [1, 2], 1: [0, 1, 2, 3]})
    assert head_pairs(student, teacher, 0, 0) == ([0, 1], [0, 3])
    assert head_pairs(student, teacher, 1, 1) == ([], [])
    # same heads, same weights: the pruned student's kept heads have exactly the teacher's scores
    with AttentionScores(student) as s, AttentionScores(teacher) as t, torch.no_grad():
        student(**inputs())
        teacher(**inputs())
        torch.testing.assert_close(s.per_layer()[0], t.per_layer()[0][:, [0, 3]])
        assert s.per_layer()[1] is None


@pytest.mark.parametrize("objective", ["intermediate", "prediction"])
def test_distillation_stage_lowers_its_loss(objective):
    teacher, student = tiny_classifier(seed=0), tiny_classifier(layers=1, hidden=9, heads=3, seed=1)  # 4 % 3 != 0
    rows = [{"input_ids": torch.randint(3, 50, (6,)).tolist(), "attention_mask": [1] * 6, "labels": i % 2}
            for i in range(32)]
    collate = (lambda batch: {  # rows of equal length: nothing to pad
        key: torch.tensor([row[key] for row in batch]) for key in batch[0]})
    training = OptimizationConfig(epochs=8, learning_rate=1e-2, batch_size=8, weight_decay=0.0, warmup_ratio=0.0,
                               max_grad_norm=1.0, seed=0)
    losses = DistillLosses(layer_mapping="top", embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0,
                           temperature=1.0)
    with pytest.raises(ValueError, match="heads pair by position"):
        distill(student, teacher, rows, collate, "intermediate", training, losses)
    student = tiny_classifier(layers=1, hidden=8, heads=4, seed=1)  # a narrower student: learned W_h
    history = distill(student, teacher, rows, collate, objective, training, losses)
    assert sum(history.losses[-4:]) < sum(history.losses[:4])
    if objective == "intermediate":
        assert set(history.step_details[0]) == {"embedding", "hidden", "attention"}


def test_cached_teacher_outputs_equal_the_online_ones_on_valid_positions():
    from workflow_scripts.distill.teacher_cache import IndexedRows, TeacherCache, model_inputs

    teacher = tiny_classifier()
    generator = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(3, 50, (length,), generator=generator).tolist(), "attention_mask": [1] * length,
             "labels": 0} for length in (3, 6, 4, 5)]

    def pad(batch):
        length = max(len(row["input_ids"]) for row in batch)
        return {key: torch.tensor([row[key] + [0] * (length - len(row[key])) if isinstance(row[key], list) else row[key]
                                   for row in batch]) for key in batch[0]}
    cache = TeacherCache(teacher, rows, pad, batch_size=2, device="cpu", states=True)
    assert cache.states and not TeacherCache(teacher, rows, pad, 2, "cpu", states=True, max_bytes=0).states
    batch = pad([IndexedRows(rows)[i] for i in (2, 0, 1)])  # lengths 4, 3, 6: padded to 6
    mask = batch["attention_mask"].bool()
    with AttentionScores(teacher) as capture, torch.no_grad():
        online = teacher(**model_inputs(batch), output_hidden_states=True)
        online_scores = capture.per_layer()
    torch.testing.assert_close(cache.batch_logits(batch["row"]), online.logits)
    for cached, reference in zip(cache.batch_hidden(batch["row"], 6), online.hidden_states):
        torch.testing.assert_close(cached[mask], reference[mask])
        assert (cached[~mask] == 0).all()
    pairs = (mask[:, :, None] & mask[:, None, :])[:, None].expand_as(online_scores[0])
    for cached, reference in zip(cache.batch_scores(batch["row"], 6), online_scores):
        torch.testing.assert_close(cached[pairs], reference[pairs])
