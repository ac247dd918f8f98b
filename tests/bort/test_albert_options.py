"""ALBERT's options in Bort's search (bort.search_space embedding_size and sharing): candidate tags, the space and the
embedded default's plan, the students built from such candidates, the params checks, the FPTAS table, one
candidate job and a resumed pretraining of a factorized, shared student."""
import copy
import json
import os
import shutil

import pytest
import torch
import yaml

from conftest import REPO_ROOT, build_corpus_and_teacher
from workflow_scripts.bort.distillation import build_student
from workflow_scripts.bort.fptas import (Candidate, Vocabulary, abnc_order, flops_of, interval_representatives,
                                         parameters_of, search_plan, search_space)
from workflow_scripts.core.counters import count_flops, count_parameters
from workflow_scripts.pipeline.params import ParamsError, validate_params
from workflow_scripts.reports import bort as bort_reports

TINY_VOCABULARY = Vocabulary(vocab=30522, max_positions=128, type_vocab=2)  # conftest's tiny_model_folder
MINILM_VOCABULARY = Vocabulary(vocab=30522, max_positions=512, type_vocab=2)


# ---- tags ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("candidate, tag", [
    (Candidate(4, 4, 192, 256), "D4_A4_H192_I256"),  # the tags of every existing candidate are unchanged
    (Candidate(4, 4, 192, 256, embedding_size=128), "D4_A4_H192_I256_E128"),
    (Candidate(4, 4, 192, 256, sharing="all"), "D4_A4_H192_I256_Sall"),
    (Candidate(4, 4, 192, 256, 128, "attention", 2), "D4_A4_H192_I256_E128_Sattention2"),
    (Candidate(6, 4, 192, 256, None, "ffn", 4), "D6_A4_H192_I256_Sffn4"),
    # canonical forms: E = H is no factorization, a group of the whole depth is one group, no sharing has no group
    (Candidate(4, 4, 192, 256, embedding_size=192), "D4_A4_H192_I256"),
    (Candidate(4, 4, 192, 256, sharing="all", sharing_group=4), "D4_A4_H192_I256_Sall"),
    (Candidate(4, 4, 192, 256, sharing="none", sharing_group=2), "D4_A4_H192_I256"),
])
def test_tags_name_the_options_and_round_trip(candidate, tag):
    assert candidate.tag == tag
    assert Candidate.from_tag(tag) == candidate


@pytest.mark.parametrize("tag, message", [
    ("D4_A4_H192_I256_E192", "not in canonical form: write 'D4_A4_H192_I256'"),
    ("D4_A4_H192_I256_Sall4", "not in canonical form: write 'D4_A4_H192_I256_Sall'"),
    ("D4_A4_H192_I256_Slayers", "not an architecture tag"),
    ("D4_A4_H192_I256_Sall_E128", "not an architecture tag"),  # options in their fixed order
])
def test_bad_or_non_canonical_tags_are_refused(tag, message):
    with pytest.raises(ValueError, match=message):
        Candidate.from_tag(tag)


# ---- the search space ------------------------------------------------------------------------------------------------

def test_the_space_takes_embedding_sizes_and_sharing_and_counts_each_architecture_once():
    valid, skipped = search_space({"depth": [2, 4], "heads": [4], "hidden": [128, 256], "intermediate": [256],
                                   "embedding_size": [None, 128],
                                   "sharing": ["none", {"mode": "all", "group_size": 2}]})
    # H 128 with E 128 is the unfactorized point; at depth 2 a group of 2 is every layer ("all"), at 4 two groups
    assert [c.tag for c in valid] == [
        "D2_A4_H128_I256", "D2_A4_H128_I256_Sall", "D2_A4_H256_I256", "D2_A4_H256_I256_Sall",
        "D2_A4_H256_I256_E128", "D2_A4_H256_I256_E128_Sall",
        "D4_A4_H128_I256", "D4_A4_H128_I256_Sall2", "D4_A4_H256_I256", "D4_A4_H256_I256_Sall2",
        "D4_A4_H256_I256_E128", "D4_A4_H256_I256_E128_Sall2"]
    assert not skipped
    # without the new keys the space is what it was
    plain, _ = search_space({"depth": [2], "heads": [4, 6], "hidden": [128], "intermediate": [256]})
    assert [c.tag for c in plain] == ["D2_A4_H128_I256"]


def test_sharing_shrinks_the_parameters_that_order_the_space_not_the_flops():
    plain, shared = Candidate(4, 4, 256, 256), Candidate(4, 4, 256, 256, sharing="all", sharing_group=2)
    factorized = Candidate(4, 4, 256, 256, embedding_size=128)
    assert parameters_of(shared, MINILM_VOCABULARY) < parameters_of(plain, MINILM_VOCABULARY)
    assert flops_of(shared, MINILM_VOCABULARY, 128) == flops_of(plain, MINILM_VOCABULARY, 128)
    assert parameters_of(factorized, MINILM_VOCABULARY) < parameters_of(plain, MINILM_VOCABULARY)
    assert flops_of(factorized, MINILM_VOCABULARY, 128) - flops_of(plain, MINILM_VOCABULARY, 128) == 2 * 128 * 128 * 256
    ordered = abnc_order([plain, shared, factorized], MINILM_VOCABULARY, seq_len=128)
    assert ordered == [factorized, shared, plain]  # the vocabulary table dominates: E 128 saves the most


def test_the_embedded_default_trains_four_representatives_one_of_them_factorized():
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    plan = search_plan(params)
    assert (plan.valid, len(plan.skipped)) == (14, 6)
    assert [c.tag for c in plan.to_train] == ["D2_A4_H128_I256", "D2_A4_H256_I256_E128", "D2_A4_H192_I256",
                                              "D2_A4_H256_I256"]
    sizes = [parameters_of(c, MINILM_VOCABULARY) / 1e6 for c in plan.to_train]
    assert sizes == sorted(sizes) and 4.2 < sizes[0] and sizes[-1] < 8.8  # the range the default trained before
    ordered = abnc_order(search_space(params["bort"]["search_space"])[0], MINILM_VOCABULARY, 128)
    assert interval_representatives(ordered, 4, "first") == plan.to_train


# ---- the students ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("candidate", [Candidate(2, 2, 16, 32, embedding_size=8),
                                       Candidate(4, 2, 16, 32, None, "all", 2),
                                       Candidate(3, 2, 16, 32, 8, "attention"), Candidate(2, 2, 16, 32, 24, "ffn")])
def test_a_student_built_from_an_option_candidate_has_its_counted_parameters_and_flops(candidate):
    from transformers import BertConfig

    teacher_config = BertConfig(vocab_size=TINY_VOCABULARY.vocab, max_position_embeddings=128, type_vocab_size=2)
    student = build_student(teacher_config, candidate, dropout=0.1, seed=0)
    counts = count_parameters(student.base_model)
    assert counts["embedding"] + counts["encoder"] == parameters_of(candidate, TINY_VOCABULARY)
    assert count_flops(student.base_model, 1, 16)["total"] == flops_of(candidate, TINY_VOCABULARY, 16)
    assert student.get_output_embeddings().weight is student.get_input_embeddings().weight  # tied at width E
    assert student.get_input_embeddings().weight.shape[1] == (candidate.embedding_size or candidate.hidden)


def test_a_student_without_options_is_built_exactly_as_before():
    from transformers import AutoModelForMaskedLM, BertConfig

    teacher_config = BertConfig(vocab_size=1000, max_position_embeddings=64, type_vocab_size=2)
    student = build_student(teacher_config, Candidate(2, 2, 16, 32), dropout=0.1, seed=3)
    config = teacher_config.__class__.from_dict({
        **teacher_config.to_dict(), "num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 16,
        "intermediate_size": 32, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "architectures": None, "tie_word_embeddings": True})
    torch.manual_seed(3)
    reference = AutoModelForMaskedLM.from_config(config)
    assert not hasattr(student.config, "albert")
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), reference.state_dict().values()))


# ---- params.yaml -----------------------------------------------------------------------------------------------------

@pytest.fixture
def params():
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("key, value, expected", [
    ("embedding_size", [0], "'bort.search_space.embedding_size.0': 0 is less than the minimum of 1"),
    ("embedding_size", ["128"], "'bort.search_space.embedding_size.0': '128' is not null, nor an integer >= 1 (a "
                                "number as text"),
    ("embedding_size", [128, 128], "'bort.search_space.embedding_size': [128, 128] has non-unique elements"),
    ("embedding_size", [], "'bort.search_space.embedding_size': [] should be non-empty"),
    ("sharing", ["layers"], "'bort.search_space.sharing.0': 'layers' is not one of none, all, attention, ffn, nor a "
                            "mapping of mode, group_size"),
    ("sharing", [{"mode": "all", "group_size": 0}], "'bort.search_space.sharing.0.group_size': 0 is less than"),
    ("sharing", [{"mode": "none", "group_size": 2}], "'bort.search_space.sharing.0.mode': 'none' is not one of"),
    ("sharing", [{"mode": "all"}], "'group_size' is a required property under 'bort.search_space.sharing.0'"),
    ("sharing", "all", "'bort.search_space.sharing': 'all' is not of type 'array'"),
])
def test_a_bad_option_gets_one_message_naming_its_key(params, key, value, expected):
    params["bort"]["search_space"][key] = value
    with pytest.raises(ParamsError) as error:
        validate_params(params)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_stacking_is_refused_when_every_architecture_of_the_space_shares_layers(params):
    params["bort"]["pretrain"]["stacking"] = {"stages": 1, "switch_steps": [200]}
    params["bort"]["search_space"]["sharing"] = ["all", {"mode": "ffn", "group_size": 2}]
    with pytest.raises(ParamsError, match="'bort.pretrain.stacking': stacking copies layers one by one"):
        validate_params(copy.deepcopy(params))
    params["bort"]["search_space"]["sharing"] = ["none", "all"]  # an unshared winner can be stacked
    validate_params(params)


# ---- the FPTAS table -------------------------------------------------------------------------------------------------

def test_the_table_shows_the_options_beside_parameters_flops_and_latency():
    def measured(candidate, parameters, latency_ms, error, role="candidate"):
        return {"tag": candidate.tag, "role": role, **candidate.__dict__, "parameters": parameters,
                "latency_s": latency_ms / 1e3, "flops": 10 * parameters, "surrogate_error": error,
                "mlm_accuracy": 0.1}

    teacher = measured(Candidate(2, 2, 32, 64), 100, 4.0, 1.0, role="teacher")
    candidates = [measured(Candidate(1, 2, 16, 32), 50, 2.0, 2.0),
                  measured(Candidate(2, 2, 16, 32, 8, "all"), 30, 2.0, 2.0),
                  measured(Candidate(2, 2, 16, 32, None, "ffn", 1), 40, 2.0, 2.0)]
    selection = bort_reports.select(teacher, candidates, [], "flops")
    table = bort_reports.selection_table(selection)
    assert list(table.columns[:8]) == ["rank", "architecture", "depth", "heads", "hidden", "intermediate",
                                       "embedding_size", "sharing"]
    assert table["sharing"].tolist() == ["all", "ffn/1", "none", "none"]
    assert table["embedding_size"].tolist() == [8, 16, 16, 32]
    display = bort_reports.selection_display(table)
    assert display["architecture <D, A, H, I>"].tolist()[:2] == ["<2, 2, 16, 32> E=8 shared: all",
                                                                 "<2, 2, 16, 32> shared: ffn/1"]
    assert {"parameters (M)", "latency (ms/sample)", "MFLOPs"} <= set(display.columns)
    config = bort_reports.SelectionConfig(inference_cost="flops", epsilon=1, representative="first", valid=3,
                                          skipped=0)
    outputs = bort_reports.selection_report(selection, config, "out")
    assert "Every trained candidate, ranked by W:" in outputs[os.path.join("out", "table.md")]
    chosen = outputs[os.path.join("out", "selection.json")]["chosen"]
    assert chosen["tag"] == "D2_A2_H16_I32_E8_Sall" and chosen["embedding_size"] == 8 and chosen["sharing"] == "all"


# ---- stages: one candidate job, a pretraining resumed from its checkpoint ------------------------------------------

@pytest.fixture(scope="module")
def corpus_and_teacher(tiny_model_folder, tmp_path_factory):
    """A small generated corpus and the tiny random BERT as a masked LM."""
    return build_corpus_and_teacher(tiny_model_folder, tmp_path_factory.mktemp("bort_albert"))


def test_a_candidate_job_measures_a_factorized_shared_architecture(corpus_and_teacher, tmp_path):
    from workflow_scripts.stages import fptas_candidate

    corpus, teacher = corpus_and_teacher
    tag = "D2_A2_H16_I32_E8_Sall"
    output = tmp_path / tag / "metrics.json"
    fptas_candidate.main(["--teacher", str(teacher), "--corpus", str(corpus), "--output", str(output),
                          "--architecture", tag, "--steps", "2",
                          "--hyperparameter-sets", '[{"learning_rate": 0.001, "batch_size": 8}]',
                          "--mask-probability", "0.15", "--heldout-batch-size", "8", "--seq-len", "16",
                          "--latency-repeats", "2", "--latency-warmup", "1", "--warmup-ratio", "0.0",
                          "--max-grad-norm", "1.0", "--weight-decay", "0.01", "--dropout", "0.1", "--seed", "0",
                          "--threads", "1"])
    metrics = json.loads(output.read_text())
    candidate = Candidate.from_tag(tag)
    assert metrics["tag"] == tag and metrics["embedding_size"] == 8 and metrics["sharing"] == "all"
    assert metrics["parameters"] == parameters_of(candidate, TINY_VOCABULARY)
    assert metrics["flops"] == flops_of(Candidate(2, 2, 16, 32, embedding_size=8), TINY_VOCABULARY, 16)
    assert metrics["latency_s"] > 0 and metrics["surrogate_error"] > 0


def test_pretraining_a_factorized_shared_student_resumes_from_its_checkpoint_as_it_would_have_run(
        corpus_and_teacher, tmp_path):
    from safetensors.torch import load_file
    from workflow_scripts.stages import kd_pretrain

    corpus, teacher = corpus_and_teacher
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"chosen": {"tag": "D2_A2_H16_I32_E8_Sall"}}))

    def run(output):
        kd_pretrain.main(["--objective", "mlm", "--teacher", str(teacher), "--corpus", str(corpus), "--selection",
                          str(selection), "--output", str(output), "--curve", f"{output}_curve.csv",
                          "--mlm-weight", "0.1", "--teacher-weight", "0.5", "--temperature", "1.0",
                          "--learning-rate", "1e-3", "--schedule", "linear", "--warmup-ratio", "0.1",
                          "--max-grad-norm", "1.0", "--weight-decay", "0.01", "--batch-size", "8", "--steps", "6",
                          "--stacking", json.dumps({"stages": 0, "switch_steps": []}), "--mask-probability", "0.15",
                          "--evaluate-every-steps", "3", "--checkpoint-every-steps", "3", "--keep-checkpoints", "0",
                          "--heldout-batch-size", "8", "--dropout", "0.1", "--seed", "0", "--threads", "1"])

    run(tmp_path / "whole")
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    assert "bert.encoder.layer.1.output.dense.weight" not in whole  # layer 1 is layer 0's tensors, stored once
    # a run stopped after the step-3 checkpoint: its checkpoint back where a running job keeps it, the output gone
    shutil.copytree(tmp_path / "whole" / "checkpoints", tmp_path / "resumed.checkpoints")
    shutil.rmtree(tmp_path / "resumed.checkpoints" / "step_0000006", ignore_errors=True)
    run(tmp_path / "resumed")
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 3 and metrics["architecture"] == "D2_A2_H16_I32_E8_Sall"
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
