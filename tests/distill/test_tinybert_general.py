"""TinyBERT's general distillation (Bort's pretraining objective `tinybert`): the head-group attention target, the
losses against hand-computed values and against a recomputation from the models' own weights, and the objective
inside Bort's pretraining (it trains, records its curve, and resumes from a checkpoint with its projection)."""
import json
import logging
import math

import pytest
import torch
import transformers

from conftest import build_corpus_and_teacher
from workflow_scripts.distill.general_distillation import GeneralDistillationLosses, TransformerDistillation
from workflow_scripts.distill.losses import (WidthProjection, grouped_teacher_scores, head_pairs,
                                             intermediate_losses)

torch.set_num_threads(1)


def tiny_masked_lm(layers=2, hidden=16, heads=4, seed=0):
    config = transformers.BertConfig(vocab_size=40, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=24, max_position_embeddings=16,
                                     initializer_range=0.3, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return transformers.BertForMaskedLM(config).eval()


def batch():
    input_ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 8, 0, 0]])
    labels = torch.full_like(input_ids, -100)
    labels[0, 2], labels[1, 1] = 9, 5
    return input_ids, (input_ids != 0).long(), labels


# ---- fewer student heads than the teacher's -------------------------------------------------------------------------

def test_each_student_head_is_compared_with_the_mean_of_its_group_of_teacher_heads():
    teacher = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)  # head h's scores are all h
    grouped = grouped_teacher_scores(teacher, 2)
    assert grouped.shape == (1, 2, 2, 2)
    assert grouped[0, 0].unique().tolist() == [0.5] and grouped[0, 1].unique().tolist() == [2.5]  # (0+1)/2, (2+3)/2
    assert grouped_teacher_scores(teacher, 4) is teacher
    with pytest.raises(ValueError, match="equal groups"):
        grouped_teacher_scores(teacher, 3)


def test_head_counts_that_do_not_divide_are_an_error_that_says_what_to_do():
    student, teacher = tiny_masked_lm(layers=1, hidden=12, heads=3), tiny_masked_lm()
    assert head_pairs(tiny_masked_lm(layers=1, hidden=8, heads=2), teacher, 0, 1) == ([0, 1], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="multiple of the student's; set attention_weight to 0"):
        head_pairs(student, teacher, 0, 1)
    # without the attention loss the counts do not matter
    TransformerDistillation(student, teacher, GeneralDistillationLosses("top", 1.0, 1.0, 0.0, 0.0)).close()


def test_intermediate_losses_on_hand_computed_values():
    """One student layer on the teacher's second (of two), identity projection, 2 student heads against 4 teacher
    heads, one padded token."""
    mask = torch.tensor([[1, 1, 0]])
    student_hidden = [torch.zeros(1, 3, 2), torch.ones(1, 3, 2)]
    teacher_hidden = [torch.tensor([[[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]]]), torch.zeros(1, 3, 2),
                      torch.tensor([[[1.0, 3.0], [1.0, 1.0], [9.0, 9.0]]])]
    student_scores = [torch.zeros(1, 2, 3, 3)]
    teacher_scores = [None, torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 3, 3)]
    embedding, hidden, attention = intermediate_losses(
        student_hidden, student_scores, teacher_hidden, teacher_scores, WidthProjection(2, 2), [2],
        [([0, 1], [0, 1, 2, 3])], mask)
    assert embedding.item() == pytest.approx((1 + 1 + 9 + 9) / 4)  # valid tokens only: 2 tokens x 2 dims
    assert hidden.item() == pytest.approx((0 + 4 + 0 + 0) / 4)
    # group means 0.5 and 2.5 on the 4 valid (query, key) pairs of each head
    assert attention.item() == pytest.approx((4 * 0.25 + 4 * 6.25) / 8)


def manual_scores(layer, hidden_states):
    """Q K^T / sqrt(d) of one BERT layer recomputed from its weights: (B, n, T, T)."""
    attention = layer.attention.self
    d = attention.attention_head_size
    query = attention.query(hidden_states).unflatten(-1, (-1, d)).transpose(1, 2)
    key = attention.key(hidden_states).unflatten(-1, (-1, d)).transpose(1, 2)
    return query @ key.transpose(-1, -2) / math.sqrt(d)


def test_the_objective_equals_a_recomputation_from_the_models_weights():
    teacher, student = tiny_masked_lm(layers=2, hidden=16, heads=4, seed=0), tiny_masked_lm(1, 8, 2, seed=1)
    losses = GeneralDistillationLosses("uniform", embedding_weight=0.5, hidden_weight=2.0, attention_weight=3.0,
                                       mlm_weight=0.25)
    distiller = TransformerDistillation(student, teacher, losses)
    input_ids, mask, labels = batch()
    loss, terms = distiller(input_ids, mask, labels)
    distiller.close()

    with torch.no_grad():
        teacher_states = teacher.bert(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        student_states = student.bert(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        project = distiller.projection.linear  # one W for the embeddings and every layer (TinyBERT's fit_dense)
        valid = mask.bool()

        def mse(a, b):
            return ((a - b) ** 2)[valid].mean()
        embedding = mse(project(student_states[0]), teacher_states[0])
        hidden = mse(project(student_states[1]), teacher_states[2])  # uniform: student layer 1 <- teacher layer 2
        teacher_scores = manual_scores(teacher.bert.encoder.layer[1], teacher_states[1])  # (B, 4, T, T)
        # student head 0 <- mean of teacher heads 0 and 1, head 1 <- heads 2 and 3 (consecutive groups)
        target = torch.stack([teacher_scores[:, 0:2].mean(1), teacher_scores[:, 2:4].mean(1)], 1)
        student_scores = manual_scores(student.bert.encoder.layer[0], student_states[0])
        pairs = (valid[:, :, None] & valid[:, None, :])[:, None].expand_as(student_scores)
        attention = ((student_scores - target) ** 2)[pairs].mean()
        masked = labels != -100
        mlm = torch.nn.functional.cross_entropy(student.cls(student_states[-1][masked]), labels[masked])
    assert terms["embedding"] == pytest.approx(embedding.item(), rel=1e-5)
    assert terms["hidden"] == pytest.approx(hidden.item(), rel=1e-5)
    assert terms["attention"] == pytest.approx(attention.item(), rel=1e-5)
    assert terms["mlm"] == pytest.approx(mlm.item(), rel=1e-5)
    expected = 0.5 * embedding + 2.0 * hidden + 3.0 * attention + 0.25 * mlm
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_only_the_student_and_the_projection_are_trained_and_the_loss_falls():
    teacher, student = tiny_masked_lm(seed=0), tiny_masked_lm(1, 8, 2, seed=1)
    distiller = TransformerDistillation(student, teacher, GeneralDistillationLosses("uniform", 1.0, 1.0, 1.0, 0.0))
    names = {name.split(".")[0] for name, _ in distiller.named_parameters()}
    assert names == {"student", "projection"}  # T is outside the module tree: not optimized, not clipped
    optimizer = torch.optim.AdamW(distiller.parameters(), lr=1e-2)
    teacher_before = [p.clone() for p in teacher.parameters()]
    input_ids, mask, labels = batch()
    losses = []
    for _ in range(40):
        loss, terms = distiller(input_ids, mask, labels)
        assert "mlm" not in terms  # TinyBERT: no prediction-layer loss in general distillation
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    distiller.close()
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, teacher.parameters()))


def test_every_weight_at_zero_is_refused():
    with pytest.raises(ValueError, match="would not train"):
        GeneralDistillationLosses("uniform", 0.0, 0.0, 0.0, 0.0)


# ---- inside Bort's pretraining ------------------------------------------------------------------------------------

def pretrain_config(steps, **overrides):
    from workflow_scripts.bort.pretrain import PretrainConfig

    values = dict(objective="tinybert", mlm_weight=0.1, teacher_weight=0.5, temperature=1.0, learning_rate=3e-3,
                  schedule="linear", warmup_ratio=0.1, max_grad_norm=1.0, weight_decay=0.01, batch_size=8,
                  steps=steps, stacking={"stages": 0, "switch_steps": []}, dropout=0.1, mask_probability=0.15,
                  evaluate_every_steps=4, checkpoint_every_steps=5, keep_checkpoints=0, heldout_batch_size=8, seed=0,
                  tinybert={"layer_mapping": "uniform", "embedding_weight": 1.0, "hidden_weight": 1.0,
                            "attention_weight": 1.0, "mlm_weight": 0.0})
    return PretrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def corpus_and_teacher(tiny_model_folder, tmp_path_factory):
    """A small generated corpus and the tiny random BERT (2 layers, 4 heads, hidden 32) as a masked LM."""
    return build_corpus_and_teacher(tiny_model_folder, tmp_path_factory.mktemp("general"))


def run_pretraining(corpus, teacher, tmp_path, output_name, config, tag="D1_A2_H16_I32"):
    from workflow_scripts.bort.pretrain import pretrain
    from workflow_scripts.core.training import Distributed

    selection = tmp_path / f"{tag}.json"  # written once: a resumed run must see the same inputs (their mtimes too)
    if not selection.exists():
        selection.write_text(json.dumps({"chosen": {"tag": tag}}))  # D1_A2_H16_I32: 2 heads vs T's 4, width 16 vs 32
    return pretrain(str(teacher), str(corpus), str(selection), str(tmp_path / output_name), config,
                    Distributed(0, 1, "cpu"), logging.getLogger("test"))


def test_the_tinybert_objective_trains_the_student_and_resumes_with_its_projection(corpus_and_teacher, tmp_path):
    from workflow_scripts.bort.pretrain import write_pretrained

    corpus, teacher = corpus_and_teacher
    uninterrupted = run_pretraining(corpus, teacher, tmp_path, "uninterrupted", pretrain_config(12))
    curve = uninterrupted.curve
    assert [point["step"] for point in curve] == [4, 8, 12] and curve[-1]["train_loss"] < curve[0]["train_loss"]
    assert all(0 <= point["mlm_accuracy"] <= 1 for point in curve)  # held-out MLM accuracy, as for kd and mlm
    assert uninterrupted.teacher_outputs == "online"  # T's states are not in the teacher_outputs cache
    write_pretrained(uninterrupted, str(tmp_path / "uninterrupted"), str(tmp_path / "curve.csv"))
    metrics = json.loads((tmp_path / "uninterrupted" / "metrics.json").read_text())
    assert metrics["objective"] == "tinybert" and metrics["steps"] == 12

    # A run that stopped after its step-10 checkpoint (step 5 and 10 written, no final model): run again, it resumes
    # there, projection and optimizer state included, and ends where the uninterrupted run did.
    first = run_pretraining(corpus, teacher, tmp_path, "resumed", pretrain_config(12))
    state = torch.load(tmp_path / "resumed.checkpoints" / "step_0000010" / "trainer_state.pt", weights_only=False)
    assert set(state["projection"]) == {"linear.weight", "linear.bias"}
    del first
    resumed = run_pretraining(corpus, teacher, tmp_path, "resumed", pretrain_config(12))
    assert resumed.start_step == 10
    expected, actual = uninterrupted.student.state_dict(), resumed.student.state_dict()
    assert all(torch.equal(expected[name].cpu(), actual[name].cpu()) for name in expected)


def test_the_tinybert_objective_refuses_stacking(corpus_and_teacher, tmp_path):
    corpus, teacher = corpus_and_teacher
    config = pretrain_config(4, stacking={"stages": 1, "switch_steps": [2]})
    with pytest.raises(ValueError, match="tinybert runs in one process without stacking"):
        run_pretraining(corpus, teacher, tmp_path, "stacked", config, tag="D2_A2_H16_I32")
