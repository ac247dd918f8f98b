"""Bort: the search space and its counts, the W-coefficient and the interval step, the distillation loss, one
candidate job, the selection stage, and KD pretraining (resume after a kill, DDP with two CPU processes)."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from workflow_repo import command_env
from workflow_scripts.reports.bort import compare, steps_to_reach
from workflow_scripts.core.counters import count_parameters
from workflow_scripts.bort.distillation import build_student, distillation_loss, noam_factor
from workflow_scripts.bort.fptas import (Candidate, Vocabulary, abnc_order, interval_representatives, parameters_of,
                                    rank_by_w, search_space, w_coefficient)
from workflow_scripts.bort.pretrain import learning_rate_schedule

MINILM_VOCABULARY = Vocabulary(vocab=30522, max_positions=512, type_vocab=2)
TINY_VOCABULARY = Vocabulary(vocab=30522, max_positions=128, type_vocab=2)  # conftest's tiny_model_folder


# ---- search space and counts ------------------------------------------------------------------------------------

def test_the_papers_space_has_300_valid_architectures():
    valid, skipped = search_space({"depth": [2, 4, 6, 8, 10, 12], "heads": [4, 8, 12, 16],
                                   "hidden": [512, 768, 1024], "intermediate": [256, 512, 768, 1024, 3072]})
    assert len(valid) == 300 and len(skipped) == 60
    assert all(c.heads == 12 and c.hidden in (512, 1024) for c in skipped)


@pytest.mark.parametrize("candidate", [Candidate(1, 2, 16, 32), Candidate(2, 6, 192, 768), Candidate(3, 4, 128, 64)])
def test_parameter_counts_of_candidates_equal_the_built_modules(candidate):
    from transformers import BertConfig

    teacher_config = BertConfig(vocab_size=MINILM_VOCABULARY.vocab, max_position_embeddings=512, type_vocab_size=2)
    student = build_student(teacher_config, candidate, dropout=0.1, seed=0)
    counts = count_parameters(student.base_model)
    assert counts["embedding"] + counts["encoder"] == parameters_of(candidate, MINILM_VOCABULARY)
    assert student.config.num_hidden_layers == candidate.depth and student.config.num_attention_heads == candidate.heads
    # the decoder is the word embedding matrix, not a copy
    assert student.get_output_embeddings().weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()


def test_tags_round_trip_and_bad_tags_are_refused():
    assert Candidate.from_tag("D4_A8_H768_I1024") == Candidate(4, 8, 768, 1024)
    assert Candidate(4, 8, 768, 1024).tag == "D4_A8_H768_I1024"
    with pytest.raises(ValueError, match="not an architecture tag"):
        Candidate.from_tag("D4_A8_H768")


def test_abnc_order_is_by_parameters_then_flops():
    ordered = abnc_order([Candidate(4, 4, 256, 256), Candidate(2, 4, 128, 256), Candidate(2, 4, 256, 256),
                          Candidate(2, 8, 128, 256)], MINILM_VOCABULARY, seq_len=128)
    sizes = [parameters_of(c, MINILM_VOCABULARY) for c in ordered]
    assert sizes == sorted(sizes) and ordered[-1] == Candidate(4, 4, 256, 256)
    # same parameters (heads do not change them): ties broken by FLOPs, then by the tag
    assert {ordered[0], ordered[1]} == {Candidate(2, 4, 128, 256), Candidate(2, 8, 128, 256)}


# ---- W-coefficient and the interval step ---------------------------------------------------------------------------

def test_w_coefficient_on_fixed_numbers():
    assert w_coefficient(50, 2, 0.5, teacher_parameters=100, teacher_inference=4) == pytest.approx(0.5)
    assert w_coefficient(25, 1, 2.0, 100, 4) == pytest.approx(0.75 * 0.75 / 2)
    assert w_coefficient(100, 1, 1.0, 100, 4) == 0  # as large as T
    with pytest.raises(ValueError, match="positive"):
        w_coefficient(50, 2, 0.0, 100, 4)


def test_ranking_by_w_prefers_small_fast_and_accurate():
    teacher = {"parameters": 100, "latency_s": 4.0}
    measured = [{"tag": "big", "parameters": 80, "latency_s": 3.0, "surrogate_error": 1.0},   # 0.2*0.25/1 = 0.05
                {"tag": "small", "parameters": 20, "latency_s": 1.0, "surrogate_error": 4.0},  # 0.8*0.75/4 = 0.15
                {"tag": "mid", "parameters": 50, "latency_s": 2.0, "surrogate_error": 2.0}]    # 0.5*0.5/2 = 0.125
    ranked = rank_by_w(measured, teacher, "latency_s")
    assert [row["tag"] for row in ranked] == ["small", "mid", "big"]
    assert [row["w_coefficient"] for row in ranked] == pytest.approx([0.15, 0.125, 0.05])


def test_intervals_of_epsilon_architectures_and_their_representatives():
    ordered = list("abcdefg")
    assert interval_representatives(ordered, 1) == ordered
    assert interval_representatives(ordered, 3, "first") == ["a", "d", "g"]
    assert interval_representatives(ordered, 3, "middle") == ["b", "e", "g"]
    assert interval_representatives(ordered, 3, "last") == ["c", "f", "g"]
    assert interval_representatives(ordered, 10, "last") == ["g"]
    with pytest.raises(ValueError, match="epsilon"):
        interval_representatives(ordered, 0)


# ---- distillation loss and schedules -------------------------------------------------------------------------------

def test_kd_loss_equals_a_hand_computation():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    targets = torch.tensor([0, 2])
    tau, alpha, beta = 2.0, 0.1, 0.5

    def softmax(row, t=1.0):
        exps = [math.exp(v / t) for v in row]
        return [e / sum(exps) for e in exps]

    mlm = sum(-math.log(softmax(s)[y]) for s, y in zip(student.tolist(), targets.tolist())) / 2
    kl = sum(sum(p * math.log(p / q) for p, q in zip(softmax(t, tau), softmax(s, tau)))
             for s, t in zip(student.tolist(), teacher.tolist())) / 2 * tau ** 2
    loss, parts = distillation_loss(student, teacher, targets, alpha, beta, tau)
    assert parts["mlm"] == pytest.approx(mlm, rel=1e-6) and parts["kl"] == pytest.approx(kl, rel=1e-5)
    assert loss.item() == pytest.approx(alpha * mlm + beta * kl, rel=1e-6)
    mlm_only, _ = distillation_loss(student, None, targets, 1.0, 0.0, tau)
    assert mlm_only.item() == pytest.approx(mlm, rel=1e-6)


def test_kd_gradients_split_over_ranks_average_to_the_single_process_gradient():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 11, requires_grad=True), torch.randn(6, 11)
    targets = torch.randint(0, 11, (6,))
    loss, _ = distillation_loss(student, teacher, targets, 0.1, 0.5, 2.0)
    (full,) = torch.autograd.grad(loss, student)
    halves = []
    for rows in (slice(0, 2), slice(2, 6)):  # uneven masked counts per rank; normalizer = global count / world
        part, _ = distillation_loss(student[rows], teacher[rows], targets[rows], 0.1, 0.5, 2.0, normalizer=6 / 2)
        halves.append(torch.autograd.grad(part, student)[0])
    assert torch.allclose((halves[0] + halves[1]) / 2, full, atol=1e-7)


def cached(teacher_logits, top_k, temperature):
    from workflow_scripts.bort.distillation import TeacherTopK
    from workflow_scripts.bort.teacher_outputs import top_k_outputs

    stored = top_k_outputs(teacher_logits, top_k, [temperature])
    return TeacherTopK(stored["ids"], stored["logits"], stored["logsumexp"][:, 0], stored["tail_logsumexp"][:, 0],
                       temperature)


def test_kd_from_cached_outputs_of_the_whole_vocabulary_equals_full_kd_values_and_gradients():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 13, requires_grad=True), 3 * torch.randn(5, 13)
    targets = torch.randint(0, 13, (5,))
    for tau in (1.0, 2.0):
        full, full_parts = distillation_loss(student, teacher, targets, 0.1, 0.5, tau)
        top, top_parts = distillation_loss(student, cached(teacher, 13, tau), targets, 0.1, 0.5, tau)
        assert top.item() == pytest.approx(full.item(), rel=1e-6) and top_parts["kl"] == pytest.approx(
            full_parts["kl"], rel=1e-5, abs=1e-7)
        (full_gradient,), (top_gradient,) = torch.autograd.grad(full, student), torch.autograd.grad(top, student)
        assert torch.allclose(top_gradient, full_gradient, atol=1e-7)


def test_top_k_kd_is_the_kl_between_the_top_k_and_tail_buckets():
    student = torch.tensor([[0.5, 2.0, -1.0, 0.0, 1.0, 0.3, -0.2]])
    teacher = torch.tensor([[3.0, 1.0, 2.5, -1.0, 0.0, 0.5, -2.0]])
    tau = 2.0

    def softmax(row):
        exps = [math.exp(v / tau) for v in row]
        return [e / sum(exps) for e in exps]

    p, q = softmax(teacher[0].tolist()), softmax(student[0].tolist())
    top = [0, 2, 1]  # the teacher's three largest logits
    p_buckets = [p[i] for i in top] + [1 - sum(p[i] for i in top)]
    q_buckets = [q[i] for i in top] + [1 - sum(q[i] for i in top)]
    bucketed = sum(a * math.log(a / b) for a, b in zip(p_buckets, q_buckets)) * tau ** 2
    full = sum(a * math.log(a / b) for a, b in zip(p, q)) * tau ** 2
    _, parts = distillation_loss(student, cached(teacher, 3, tau), torch.tensor([1]), 0.0, 1.0, tau)
    assert parts["kl"] == pytest.approx(bucketed, rel=1e-5)
    assert 0 < parts["kl"] < full  # the data-processing inequality: merging the tail loses information


def test_cached_outputs_at_another_temperature_are_refused():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="temperature 1.0"):
        distillation_loss(torch.randn(2, 5), cached(torch.randn(2, 5), 2, 1.0), torch.tensor([0, 1]), 0.1, 0.5, 2.0)


def test_noam_peaks_after_warmup_then_decays_as_inverse_square_root_and_linear_reaches_zero():
    assert noam_factor(9, 10) == pytest.approx(1.0)
    assert noam_factor(4, 10) == pytest.approx(0.5)
    assert noam_factor(39, 10) == pytest.approx(math.sqrt(10 / 40))
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    linear_factor = learning_rate_schedule("linear", optimizer, warmup_steps=10, total_steps=110).lr_lambdas[0]
    assert linear_factor(9) == pytest.approx(1.0) and linear_factor(110) == 0.0
    assert linear_factor(60) == pytest.approx(0.5)
    noam = learning_rate_schedule("noam", optimizer, warmup_steps=10, total_steps=110).lr_lambdas[0]
    assert noam(39) == pytest.approx(math.sqrt(10 / 40))


def test_steps_to_reach_the_mlm_only_accuracy():
    kd = [{"step": 10, "mlm_accuracy": 0.1, "mlm_loss": 6.0}, {"step": 20, "mlm_accuracy": 0.3, "mlm_loss": 5.0},
          {"step": 30, "mlm_accuracy": 0.35, "mlm_loss": 4.0}]
    mlm = [{"step": 10, "mlm_accuracy": 0.05, "mlm_loss": 7.0}, {"step": 20, "mlm_accuracy": 0.2, "mlm_loss": 6.0},
           {"step": 30, "mlm_accuracy": 0.3, "mlm_loss": 5.5}]
    assert steps_to_reach(kd, 0.3) == 20 and steps_to_reach(mlm, 0.9) is None
    assert steps_to_reach(kd, 5.5, "mlm_loss") == 20 and steps_to_reach(mlm, 4.0, "mlm_loss") is None
    summary = compare({"kd": kd, "mlm": mlm})
    assert summary["target_mlm_accuracy"] == 0.3 and summary["target_mlm_loss"] == 5.5
    assert summary["objectives"]["kd"]["steps_to_target"] == 20 and summary["kd_steps_fraction_of_mlm"] == 20 / 30
    assert summary["objectives"]["mlm"]["steps_to_target_loss"] == 30
    assert summary["kd_steps_fraction_of_mlm_loss"] == 20 / 30


# ---- stage CLIs on a tiny teacher ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_and_teacher(tiny_model_folder, tmp_path_factory):
    """A small generated corpus and the tiny random BERT with a masked-LM head fitted for a few steps."""
    from workflow_scripts.stages import prepare_corpus
    from workflow_scripts.stages import teacher_prep

    root = tmp_path_factory.mktemp("bort")
    corpus, teacher = root / "corpus", root / "teacher"
    prepare_corpus.main(["--tokenizer", str(tiny_model_folder), "--output", str(corpus), "--source", "generated",
                         "--text-column", "text", "--hub-config", "null", "--max-documents", "null",
                         "--generated-sentences", "400", "--max-length", "24", "--heldout-fraction", "0.1",
                         "--seed", "0", "--threads", "1"])
    teacher_prep.main(["--model", str(tiny_model_folder), "--corpus", str(corpus), "--output", str(teacher),
                       *teacher_args("head", 3)])
    return corpus, teacher


def teacher_args(train, steps):
    return ["--train", train, "--steps", str(steps), "--learning-rate", "1e-3", "--warmup-ratio", "0.1",
            "--weight-decay", "0.01", "--max-grad-norm", "1.0", "--batch-size", "8", "--mask-probability", "0.15",
            "--seed", "0", "--threads", "1"]


def write_teacher_outputs(corpus, teacher, output, top_k, streams, temperatures=(1.0, 2.0)):
    from workflow_scripts.stages import teacher_outputs

    teacher_outputs.main(["--teacher", str(teacher), "--corpus", str(corpus), "--output", str(output),
                          "--top-k", str(top_k), "--streams", json.dumps(streams),
                          "--temperatures", json.dumps(list(temperatures)), "--mask-probability", "0.15",
                          "--heldout-batch-size", "8", "--seed", "0", "--threads", "1"])
    return output


@pytest.fixture(scope="module")
def cached_teacher(corpus_and_teacher, tmp_path_factory):
    """T's top-16 outputs on the streams the pretraining tests read (batch 8, 100 steps) and the candidates' (4)."""
    corpus, teacher = corpus_and_teacher
    return write_teacher_outputs(corpus, teacher, tmp_path_factory.mktemp("cache") / "outputs", 16, [[4, 3], [8, 100]])


SEARCH_ARGS = ["--steps", "3", "--hyperparameter-sets", '[{"learning_rate": 0.001, "batch_size": 8}, '
               '{"learning_rate": 0.01, "batch_size": 4}]', "--mask-probability", "0.15", "--heldout-batch-size", "8",
               "--seq-len", "16", "--latency-repeats", "3", "--latency-warmup", "1", "--warmup-ratio", "0.0",
               "--max-grad-norm", "1.0", "--weight-decay", "0.01", "--dropout", "0.1", "--seed", "0", "--threads", "1"]


def test_the_teacher_has_a_fitted_head_tied_to_its_frozen_encoders_embeddings(corpus_and_teacher, tiny_model_folder):
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    _, teacher_folder = corpus_and_teacher
    teacher = AutoModelForMaskedLM.from_pretrained(teacher_folder)
    encoder = load_file(tiny_model_folder / "model.safetensors")
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        assert torch.equal(teacher.base_model.state_dict()[name], encoder[name])  # frozen: unchanged
    assert teacher.get_output_embeddings().weight.data_ptr() == teacher.get_input_embeddings().weight.data_ptr()
    record = json.loads((teacher_folder / "teacher.json").read_text())
    assert record["head"] == "fresh" and record["train"] == "head" and record["steps"] == 3


def test_training_the_whole_teacher_moves_its_encoder_and_lowers_its_heldout_loss(corpus_and_teacher,
                                                                                  tiny_model_folder, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM
    from workflow_scripts.stages import teacher_prep

    corpus, _ = corpus_and_teacher
    output = tmp_path / "teacher"
    teacher_prep.main(["--model", str(tiny_model_folder), "--corpus", str(corpus), "--output", str(output),
                       *teacher_args("whole", 40)])
    teacher = AutoModelForMaskedLM.from_pretrained(output)
    encoder = load_file(tiny_model_folder / "model.safetensors")
    name = "encoder.layer.1.output.dense.weight"
    assert not torch.equal(teacher.base_model.state_dict()[name], encoder[name])
    record = json.loads((output / "teacher.json").read_text())
    assert record["train"] == "whole" and record["steps"] == 40
    assert record["heldout"]["mlm_loss"] < record["heldout_before"]["mlm_loss"] - 0.3
    assert record["heldout"]["mlm_accuracy"] > record["heldout_before"]["mlm_accuracy"] + 0.05
    assert 0 < record["most_frequent_token_rate"] < 1


def test_one_candidate_job_trains_under_every_set_and_writes_its_metrics(corpus_and_teacher, tmp_path):
    from workflow_scripts.stages import fptas_candidate

    corpus, teacher = corpus_and_teacher
    output = tmp_path / "D1_A2_H16_I32" / "metrics.json"
    fptas_candidate.main(["--teacher", str(teacher), "--corpus", str(corpus), "--output", str(output),
                          "--architecture", "D1_A2_H16_I32", *SEARCH_ARGS])
    metrics = json.loads(output.read_text())
    assert metrics["parameters"] == parameters_of(Candidate(1, 2, 16, 32), TINY_VOCABULARY)
    assert len(metrics["runs"]) == 2 and all(len(run["losses"]) == 3 for run in metrics["runs"])
    best = min(metrics["runs"], key=lambda run: run["surrogate_error"])
    assert metrics["surrogate_error"] == best["surrogate_error"] > 0
    assert metrics["latency_s"] > 0 and metrics["latency"]["threads"] == 1 and metrics["flops"] > 0
    teacher_output = tmp_path / "teacher.json"
    fptas_candidate.main(["--teacher", str(teacher), "--corpus", str(corpus), "--output", str(teacher_output),
                          "--teacher-only", *SEARCH_ARGS])
    measured_teacher = json.loads(teacher_output.read_text())
    assert measured_teacher["parameters"] > metrics["parameters"] and measured_teacher["depth"] == 2


def test_a_candidate_reading_cached_outputs_of_the_whole_vocabulary_trains_as_one_running_the_teacher(
        corpus_and_teacher, tmp_path):
    from workflow_scripts.stages import fptas_candidate

    corpus, teacher = corpus_and_teacher
    full_cache = write_teacher_outputs(corpus, teacher, tmp_path / "full", TINY_VOCABULARY.vocab, [[4, 3], [8, 3]],
                                       temperatures=[1.0])
    runs = {}
    for mode, extra in (("online", []), ("cached", ["--teacher-outputs", str(full_cache)])):
        output = tmp_path / mode / "metrics.json"
        fptas_candidate.main(["--teacher", str(teacher), "--corpus", str(corpus), "--output", str(output),
                              "--architecture", "D1_A2_H16_I32", *SEARCH_ARGS, *extra])
        runs[mode] = json.loads(output.read_text())
    assert runs["cached"]["teacher_outputs"] == "cached" and runs["online"]["teacher_outputs"] == "online"
    for online, cached_run in zip(runs["online"]["runs"], runs["cached"]["runs"]):
        # The losses are KL = cross-entropy (about 10 nats) - T's entropy: float32 leaves about 1e-6 of either
        assert cached_run["losses"] == pytest.approx(online["losses"], abs=1e-5)
        assert cached_run["surrogate_error"] == pytest.approx(online["surrogate_error"], rel=1e-5)


def test_a_cache_of_another_stream_is_refused_with_the_reason(corpus_and_teacher, cached_teacher):
    from transformers import AutoTokenizer
    from workflow_scripts.bort.teacher_outputs import TeacherOutputs
    from workflow_scripts.data.corpus import load_corpus, training_batches

    corpus, teacher = corpus_and_teacher
    cache = TeacherOutputs.load(cached_teacher)
    train, _, _ = load_corpus(corpus)
    tokenizer = AutoTokenizer.from_pretrained(teacher)

    def first_batch(batch_size=8, seed=0, steps=10, masked_seed=None):
        batches = training_batches(train, tokenizer, 0.15, batch_size, seed if masked_seed is None else masked_seed)
        return next(cache.attach(batches, batch_size=batch_size, seed=seed, mask_probability=0.15, steps=steps,
                                 temperature=2.0))

    assert first_batch()["teacher_ids"].shape[1] == 16
    with pytest.raises(ValueError, match="seed 0 .* this run uses 1"):
        first_batch(seed=1)
    with pytest.raises(ValueError, match="no cached stream of batch 16"):
        first_batch(batch_size=16)
    with pytest.raises(ValueError, match="covers 100 steps, this run needs 200"):
        first_batch(steps=200)
    with pytest.raises(ValueError, match="masked tokens differ"):  # batches that are not the cached stream's
        first_batch(masked_seed=5)


def test_selection_picks_the_largest_w_among_candidates_never_a_reference(tmp_path):
    from workflow_scripts.stages import fptas_select

    def write(name, parameters, latency, error, role="candidate", shape=(1, 2, 16, 32)):
        path = tmp_path / f"{name}.json"
        depth, heads, hidden, intermediate = shape
        path.write_text(json.dumps({"tag": name, "role": role, "depth": depth, "heads": heads, "hidden": hidden,
                                    "intermediate": intermediate, "parameters": parameters, "latency_s": latency,
                                    "flops": parameters * 10, "surrogate_error": error, "mlm_accuracy": 0.1}))
        return str(path)

    teacher = write("teacher", 100, 4.0, 1.0, role="teacher")
    candidates = [write("a", 80, 3.0, 1.0), write("b", 20, 1.0, 4.0), write("c", 50, 2.0, 2.0), write("d", 90, 3.9, 1)]
    reference = write("ref", 10, 0.5, 1.0)  # W 0.79: better than every candidate, but never chosen
    output = tmp_path / "out"
    fptas_select.main(["--teacher", teacher, "--candidates", *candidates, "--references", reference,
                       "--output-dir", str(output), "--inference-cost", "latency", "--epsilon", "1",
                       "--representative", "first", "--valid", "4", "--skipped", "0"])
    selection = json.loads((output / "selection.json").read_text())
    assert selection["chosen"]["tag"] == "b" and selection["chosen"]["w_coefficient"] == pytest.approx(0.15)
    assert [row["tag"] for row in selection["ranking"]] == ["b", "c", "a", "d"]
    table = (output / "table.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in table[1:]] == [["1", "b"], ["2", "c"], ["3", "a"], ["reference", "ref"],
                                                           ["T", "teacher"]]
    assert "<svg" in (output / "candidates.svg").read_text() and "| 1 |" in (output / "table.md").read_text()


# ---- KD pretraining: resume after a kill, DDP ----------------------------------------------------------------------

def write_selection(path, tag="D1_A2_H16_I32"):
    path.write_text(json.dumps({"chosen": {"tag": tag}}))
    return str(path)


NO_STACKING = {"stages": 0, "switch_steps": []}


def pretrain_command(corpus, teacher, selection, output, steps, extra=(), stacking=NO_STACKING):
    """Curve points every 4 steps, checkpoints every 5: a resumed curve must not restart its mean training loss."""
    return ["-m", "workflow_scripts.stages.kd_pretrain", "--objective", "kd", "--teacher", str(teacher), "--corpus",
            str(corpus), "--selection", selection, "--output", str(output), "--curve", f"{output}_curve.csv",
            "--mlm-weight", "0.1", "--teacher-weight", "0.5", "--temperature", "2.0", "--learning-rate", "1e-3",
            "--schedule", "noam", "--warmup-ratio", "0.1", "--max-grad-norm", "1.0", "--weight-decay", "0.01",
            "--batch-size", "8", "--steps", str(steps), "--stacking", json.dumps(stacking), "--mask-probability",
            "0.15", "--evaluate-every-steps", "4", "--checkpoint-every-steps", "5", "--keep-checkpoints", "0",
            "--heldout-batch-size", "8", "--seed", "0", "--threads", "1", *extra]


def model_tensors(folder):
    from safetensors.torch import load_file

    return load_file(os.path.join(folder, "model.safetensors"))


def test_a_killed_pretraining_resumes_from_its_last_checkpoint_and_ends_as_an_uninterrupted_run(
        corpus_and_teacher, cached_teacher, tmp_path):
    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json")
    steps, dropout = 100, ["--dropout", "0.1", "--teacher-outputs", str(cached_teacher)]
    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run([sys.executable, *pretrain_command(corpus, teacher, selection, uninterrupted, steps, dropout)],
                   env=command_env(), check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, *pretrain_command(corpus, teacher, selection, killed, steps, dropout)],
                               env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_checkpoint = tmp_path / "killed.checkpoints" / "step_0000005" / "trainer_state.pt"
    deadline = time.time() + 120
    while not first_checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_checkpoint.exists() and not killed.exists()  # killed mid-run: checkpoints, no final output
    log = tmp_path / "resume.log"
    subprocess.run([sys.executable, *pretrain_command(corpus, teacher, selection, killed, steps,
                                                      [*dropout, "--log-file", str(log)])],
                   env=command_env(), check=True, capture_output=True)
    assert "resuming from" in log.read_text()
    metrics = json.loads((killed / "metrics.json").read_text())
    assert 5 <= metrics["resumed_from_step"] < steps
    expected, resumed = model_tensors(uninterrupted), model_tensors(killed)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)
    def curve_without_times(folder):  # training seconds are wall-clock: the rest must be identical
        return pd.read_csv(folder / "curve.csv").drop(columns="train_seconds")

    pd.testing.assert_frame_equal(curve_without_times(killed), curve_without_times(uninterrupted))
    assert pd.read_csv(killed / "curve.csv")["train_seconds"].is_monotonic_increasing
    assert (killed / "checkpoints").is_dir() and not (tmp_path / "killed.checkpoints").exists()


def test_ddp_on_two_cpu_processes_matches_one_process(corpus_and_teacher, cached_teacher, tmp_path):
    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json")
    # dropout masks differ across ranks by design; each rank reads its rows' share of T's cached outputs
    no_dropout = ["--dropout", "0.0", "--teacher-outputs", str(cached_teacher)]
    single, distributed = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, *pretrain_command(corpus, teacher, selection, single, 6, no_dropout)],
                   env=command_env(), check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *pretrain_command(corpus, teacher, selection, distributed, 6, no_dropout)],
                            env=command_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((distributed / "metrics.json").read_text())["world_size"] == 2
    expected, ddp = model_tensors(single), model_tensors(distributed)
    assert all(torch.allclose(expected[name], ddp[name], atol=1e-5) for name in expected)


def test_pretraining_with_stacking_ends_at_the_full_depth_and_resumes_across_a_switch(
        corpus_and_teacher, cached_teacher, tmp_path):
    """D4 from one layer: stacked after steps 4 and 10; checkpoints at 5 (two layers) and 10 (four, written after
    the switch), each resumed in a fresh output to the same final weights as the run that went through."""
    import shutil

    from workflow_scripts.core.models import load_pretrained
    from workflow_scripts.stages import kd_pretrain

    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json", "D4_A4_H32_I64")
    stacking = {"stages": 2, "switch_steps": [4, 10]}
    extra = ["--dropout", "0.1", "--teacher-outputs", str(cached_teacher)]

    def run(output, log=None):
        argv = pretrain_command(corpus, teacher, selection, output, 12, extra, stacking)[2:]
        kd_pretrain.main([*argv, *(["--log-file", str(log)] if log else [])])

    through = tmp_path / "through"
    run(through, tmp_path / "through.log")
    log = (tmp_path / "through.log").read_text()
    assert "step 4: encoder stacked to 2 layers" in log and "step 10: encoder stacked to 4 layers" in log
    metrics = json.loads((through / "metrics.json").read_text())
    assert metrics["depth_schedule"] == [[0, 1], [4, 2], [10, 4]]
    curve = pd.read_csv(through / "curve.csv")
    assert curve["step"].tolist() == [4, 8, 12] and curve["mlm_accuracy"].between(0, 1).all()
    model, _ = load_pretrained(str(through))  # the project's loader: a normal masked LM of the full depth
    assert type(model).__name__ == "BertForMaskedLM" and len(model.bert.encoder.layer) == 4
    expected = model_tensors(through)
    assert {name for name in expected if ".layer." in name} == {
        name for name in model_tensors(through / "checkpoints" / "step_0000010") if ".layer." in name}
    assert len(model_tensors(through / "checkpoints" / "step_0000005")) < len(expected)  # two layers at step 5
    for step in (5, 10):
        resumed = tmp_path / f"resumed_{step}"
        shutil.copytree(through / "checkpoints" / f"step_{step:07d}", f"{resumed}.checkpoints/step_{step:07d}")
        run(resumed)
        assert json.loads((resumed / "metrics.json").read_text())["resumed_from_step"] == step
        final = model_tensors(resumed)
        assert final.keys() == expected.keys() and all(torch.equal(expected[name], final[name]) for name in expected)
        pd.testing.assert_frame_equal(pd.read_csv(resumed / "curve.csv").drop(columns="train_seconds"),
                                      curve.drop(columns="train_seconds"))


def test_stacking_into_a_depth_it_cannot_halve_is_refused_before_training(corpus_and_teacher, tmp_path):
    from workflow_scripts.stages import kd_pretrain

    corpus, teacher = corpus_and_teacher
    selection = write_selection(tmp_path / "selection.json", "D3_A4_H32_I64")
    argv = pretrain_command(corpus, teacher, selection, tmp_path / "out", 12, ["--dropout", "0.1"],
                            {"stages": 1, "switch_steps": [6]})[2:]
    with pytest.raises(ValueError, match="the chosen architecture's depth 3 is not divisible by 2"):
        kd_pretrain.main(argv)
