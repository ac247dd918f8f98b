"""Sentence-order (SOP) and next-sentence (NSP) prediction beside Bort's kd and mlm pretraining: the student's
binary head on [CLS] against BertForPreTraining's own forward and a hand computation, its folder loading as before,
the pretraining stage with a sentence objective (curve, metrics, resume, KD from a cached pair stream), params
validation, the preset and the report."""
import json
import math
import shutil

import pandas as pd
import pytest
import torch
import yaml
from transformers import BertConfig

from conftest import REPO_ROOT
from test_bort import (corpus_and_teacher, model_tensors, pretrain_command, write_selection,  # noqa: F401
                       write_teacher_outputs)
from workflow_scripts.bort.distillation import (build_student, heldout_sentence_scores, masked_logits,
                                                pretraining_logits, sentence_loss)
from workflow_scripts.bort.fptas import Candidate
from workflow_scripts.pipeline.params import ParamsError, validate_params

CANDIDATE = Candidate(1, 2, 16, 32)


def tiny_config(type_vocab_size=2):
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=16, type_vocab_size=type_vocab_size)


def hand_batch() -> dict:
    """Three pairs [CLS]=1 A [SEP]=2 B [SEP] (pad 0), one masked position each, labels in order, in order, negative."""
    input_ids = torch.tensor([[1, 5, 6, 2, 7, 8, 2, 0], [1, 9, 2, 10, 11, 12, 2, 0], [1, 13, 14, 15, 2, 16, 2, 0]])
    attention_mask = (input_ids != 0).long()
    token_type_ids = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1, 1, 0]])
    labels = torch.full_like(input_ids, -100)
    labels[0, 1], labels[1, 4], labels[2, 5] = 5, 11, 16
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
            "labels": labels, "sentence_labels": torch.tensor([0, 0, 1])}


# ---- the head ------------------------------------------------------------------------------------------------------

def test_the_sentence_loss_is_the_mean_cross_entropy_of_a_hand_computation():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 0, 1])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.e) + math.log(2)) / 3
    assert sentence_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_the_students_pair_logits_are_bert_for_pretrainings_own():
    student = build_student(tiny_config(), CANDIDATE, dropout=0.0, seed=0, sentence_head=True).eval()
    assert type(student).__name__ == "BertForPreTraining"
    batch = hand_batch()
    with torch.no_grad():
        mlm_logits, pair_logits = pretraining_logits(student, batch)
        reference = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"])
        selected = batch["labels"] != -100
        assert torch.allclose(pair_logits, reference.seq_relationship_logits, atol=1e-6)
        assert torch.allclose(mlm_logits, reference.prediction_logits[selected], atol=1e-5)
        assert torch.allclose(masked_logits(student, batch), mlm_logits)  # the held-out MLM path: the same head
    # token types reach the encoder: B's tokens as segment 0 give other logits
    with torch.no_grad():
        _, as_one_segment = pretraining_logits(student, {**batch, "token_type_ids": torch.zeros_like(batch["labels"])})
    assert not torch.allclose(as_one_segment, pair_logits)


def test_heldout_pair_accuracy_and_loss_of_a_head_set_by_hand():
    student = build_student(tiny_config(), CANDIDATE, dropout=0.0, seed=0, sentence_head=True)
    classifier = student.cls.seq_relationship
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor([1.0, 0.0]))  # every pair: logits (1, 0), "in order"
    batch = hand_batch()
    halves = [{name: tensor[rows] for name, tensor in batch.items()} for rows in (slice(0, 2), slice(2, 3))]
    scores = heldout_sentence_scores(student, halves)
    assert scores["pairs"] == 3 and scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["loss"] == pytest.approx((2 * math.log(1 + math.exp(-1)) + math.log(1 + math.e)) / 3, rel=1e-6)
    with torch.no_grad():
        classifier.bias.copy_(torch.tensor([0.0, 1.0]))
    assert heldout_sentence_scores(student, [batch])["accuracy"] == pytest.approx(1 / 3)


def test_the_head_adds_a_pooler_and_a_two_way_classifier_and_needs_segment_embeddings():
    plain = build_student(tiny_config(), CANDIDATE, dropout=0.0, seed=0)
    with_head = build_student(tiny_config(), CANDIDATE, dropout=0.0, seed=0, sentence_head=True)
    hidden = CANDIDATE.hidden
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(with_head) - count(plain) == (hidden * hidden + hidden) + (2 * hidden + 2)
    assert with_head.get_output_embeddings().weight.data_ptr() == with_head.get_input_embeddings().weight.data_ptr()
    with pytest.raises(ValueError, match="type_vocab_size 1"):
        build_student(tiny_config(type_vocab_size=1), CANDIDATE, dropout=0.0, seed=0, sentence_head=True)


# ---- the stage ------------------------------------------------------------------------------------------------------

def sentence_args(objective="mlm", sentence="sop", extra=()):
    return ["--objective", objective, "--sentence-objective", sentence, "--sentence-weight", "1.0", *extra]


def run_stage(corpus, teacher, selection, output, steps, extra):
    from workflow_scripts.stages import kd_pretrain

    kd_pretrain.main(pretrain_command(corpus, teacher, selection, output, steps, extra)[2:])


def test_sop_pretraining_records_heldout_pair_accuracy_resumes_and_its_folder_loads_as_before(
        corpus_and_teacher, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

    from workflow_scripts.core.models import load_for_classification

    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json")
    through = tmp_path / "mlm_sop"
    run_stage(corpus, teacher, selection, through, 8, sentence_args(extra=["--dropout", "0.1"]))
    metrics = json.loads((through / "metrics.json").read_text())
    assert metrics["sentence_objective"] == "sop" and 0 <= metrics["heldout_sop_accuracy"] <= 1
    curve = pd.read_csv(through / "curve.csv")
    assert list(curve.columns) == ["objective", "step", "mlm_accuracy", "mlm_loss", "train_loss", "train_seconds",
                                   "sop_accuracy", "sop_loss"]
    assert curve["step"].tolist() == [4, 8] and curve["sop_loss"].gt(0).all()
    assert json.loads((through / "checkpoints" / "step_0000005" / "pretraining.json").read_text())[
        "sentence_objective"] == "sop"

    # the folder: a masked LM as before (head tensors left out), a classifier reusing the pooler, the full model
    saved = model_tensors(through)
    assert {"bert.pooler.dense.weight", "cls.seq_relationship.weight"} <= set(saved)
    masked_lm = AutoModelForMaskedLM.from_pretrained(through).eval()
    pretraining = AutoModelForPreTraining.from_pretrained(through).eval()
    assert torch.equal(pretraining.cls.seq_relationship.weight, saved["cls.seq_relationship.weight"])
    batch = {name: tensor[:2] for name, tensor in hand_batch().items()}
    batch["input_ids"] = batch["input_ids"] + 1000  # real word pieces of the tiny teacher's vocabulary
    with torch.no_grad():
        assert torch.allclose(masked_logits(masked_lm, batch), pretraining_logits(pretraining, batch)[0], atol=1e-6)
    classifier = load_for_classification(str(through), num_labels=3)
    assert torch.equal(classifier.bert.pooler.dense.weight, saved["bert.pooler.dense.weight"])
    assert classifier.classifier.out_features == 3

    # resumed from step 5's checkpoint in a fresh output: the same final weights and curve
    resumed = tmp_path / "resumed"
    shutil.copytree(through / "checkpoints" / "step_0000005", f"{resumed}.checkpoints/step_0000005")
    run_stage(corpus, teacher, selection, resumed, 8, sentence_args(extra=["--dropout", "0.1"]))
    assert json.loads((resumed / "metrics.json").read_text())["resumed_from_step"] == 5
    final = model_tensors(resumed)
    assert final.keys() == saved.keys() and all(torch.equal(saved[name], final[name]) for name in saved)
    pd.testing.assert_frame_equal(pd.read_csv(resumed / "curve.csv").drop(columns="train_seconds"),
                                  curve.drop(columns="train_seconds"))


def test_kd_with_sop_reads_a_cached_pair_stream_as_it_would_run_the_teacher(corpus_and_teacher, tmp_path):
    """With T's whole vocabulary cached on the sop stream, KD + SOP from the cache trains as with T run on every
    batch (which sees the pairs' token types too); an nsp run is refused by that cache, naming the missing stream."""
    from workflow_scripts.bort.teacher_outputs import TeacherOutputs

    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json")
    cache = write_teacher_outputs(corpus, teacher, tmp_path / "cache", 30522, [[8, 6, "sop"]], temperatures=[2.0])
    info = TeacherOutputs.load(cache).info
    stream = info["streams"][0]
    assert stream["sentence_objective"] == "sop" and stream["file"] == "stream_b8_sop.safetensors"
    no_dropout = ["--dropout", "0.0"]
    run_stage(corpus, teacher, selection, tmp_path / "cached", 6,
              sentence_args("kd", "sop", [*no_dropout, "--teacher-outputs", str(cache)]))
    run_stage(corpus, teacher, selection, tmp_path / "online", 6, sentence_args("kd", "sop", no_dropout))
    assert json.loads((tmp_path / "cached" / "metrics.json").read_text())["teacher_outputs"] == "cached"
    cached, online = model_tensors(tmp_path / "cached"), model_tensors(tmp_path / "online")
    assert all(torch.allclose(cached[name], online[name], atol=1e-5) for name in online)
    with pytest.raises(ValueError, match=r"no cached stream of batch 8 \(nsp pairs\)"):
        run_stage(corpus, teacher, selection, tmp_path / "nsp", 6,
                  sentence_args("kd", "nsp", [*no_dropout, "--teacher-outputs", str(cache)]))


def test_a_sentence_objective_without_a_weight_or_with_another_objective_is_refused(corpus_and_teacher, tmp_path):
    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json")
    with pytest.raises(ValueError, match="needs a positive --sentence-weight"):
        run_stage(corpus, teacher, selection, tmp_path / "out", 4,
                  ["--objective", "mlm", "--sentence-objective", "nsp", "--dropout", "0.1"])


# ---- params, preset and report --------------------------------------------------------------------------------------

@pytest.fixture
def params():
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda p: p["bort"]["pretrain"].update(sentence_objective="order"), "'bort.pretrain.sentence_objective'"),
    (lambda p: p["bort"]["pretrain"].update(sentence_weight=0), "'bort.pretrain.sentence_weight'"),
    (lambda p: p["bort"]["pretrain"].update(sentence_weight="1"), "'bort.pretrain.sentence_weight'"),
    (lambda p: p["bort"]["pretrain"].update(variants={"mlm_sop": {"objective": "mlm", "sentence_objective": "SOP"}}),
     "'bort.pretrain.variants.mlm_sop.sentence_objective'"),
    (lambda p: p["bort"]["pretrain"].update(variants={"mlm_sop": {"objective": "mlm", "sentence_weight": -1}}),
     "'bort.pretrain.variants.mlm_sop.sentence_weight'"),
    (lambda p: p["bort"]["pretrain"].update(variants={"gd_sop": {"objective": "tinybert",
                                                                 "sentence_objective": "sop"}}),
     "'bort.pretrain.variants.gd_sop.sentence_objective': sop goes with objective kd or mlm; run 'gd_sop' is tinybert"),
])
def test_a_bad_sentence_option_is_refused_naming_its_key(params, change, message):
    change(params)
    with pytest.raises(ParamsError, match=message):
        validate_params(params)


def test_the_preset_adds_mlm_with_sop_and_with_nsp_beside_the_plain_runs_and_asks_t_for_nothing_more():
    from types import SimpleNamespace

    from params_helpers import params as preset_params
    from workflow_scripts.pipeline.params import rule_hparams, teacher_output_streams

    params = preset_params("bort-sop")
    flags = {run: rule_hparams(params, "kd_pretrain", SimpleNamespace(run=run))
             for run in ("mlm", "mlm_sop", "mlm_nsp")}
    assert flags["mlm"]["sentence_objective"] == "none"
    assert flags["mlm_sop"]["sentence_objective"] == "sop" and flags["mlm_nsp"]["sentence_objective"] == "nsp"
    assert {name: value for name, value in flags["mlm"].items() if name != "sentence_objective"} == {
        name: value for name, value in flags["mlm_sop"].items() if name != "sentence_objective"}  # else equal
    assert "bort.pretrain.variants.mlm_sop" in flags["mlm_sop"].tracked_keys
    assert teacher_output_streams(params) == teacher_output_streams(preset_params())  # MLM variants: no T outputs
    params["bort"]["pretrain"]["variants"]["kd_sop"] = {"objective": "kd", "sentence_objective": "sop"}
    validate_params(params)
    streams, _ = teacher_output_streams(params)
    assert streams == [[32, 800], [32, 800, "sop"]]  # a KD run with SOP: its own cached pair stream


def test_the_report_gains_a_column_per_sentence_objective_and_keeps_its_table_without_one(tmp_path):
    from workflow_scripts.reports.bort import compare, pretraining_table, read_curve

    header = "objective,step,mlm_accuracy,mlm_loss"
    files = {"mlm": (header, ""), "mlm_sop": (header + ",sop_accuracy,sop_loss", ",0.81,0.4"),
             "mlm_nsp": (header + ",nsp_accuracy,nsp_loss", ",0.97,0.1")}
    for run, (columns, extra) in files.items():
        (tmp_path / f"{run}_curve.csv").write_text(f"{columns}\nmlm,50,0.2,5.0{extra}\n")
    curves = dict(read_curve(str(tmp_path / f"{run}_curve.csv")) for run in files)
    table = pretraining_table(compare({run: curve.to_dict("records") for run, curve in curves.items()}))
    assert list(table["held-out SOP accuracy"]) == ["-", "0.8100", "-"]
    assert list(table["held-out NSP accuracy"]) == ["-", "-", "0.9700"]
    plain = pretraining_table(compare({"mlm": curves["mlm"].to_dict("records")}))
    assert not any("SOP" in column or "NSP" in column for column in plain.columns)
