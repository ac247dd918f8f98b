"""Agora: set pruning and stopping on scripted scores, replay and resume of the loop, the returned round picked on
the pick share, the three shares of the training split and the seeds, Bort's classification head, and the stages
themselves on tiny models (the teacher labels every added point; a killed run resumes; the pick share stays unseen
by training and picks Agora's round and the baseline's epoch)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification

from workflow_scripts.agora.psi import text_key
from workflow_scripts.agora.run import AgoraRun, StudentConfig, check_student_config
from workflow_scripts.stages import agora_finetune, agora_plain
from workflow_scripts.agora.loop import (build_classifier, encode_rows, expand_grid, load_task_splits, model_seed,
                                         returned_round, run_rounds, score_on, set_name, sets_to_remove,
                                         share_indices, wrong)
from workflow_scripts.core.models import load_for_classification, minilm_folder


# ---- the loop on scripted scores ------------------------------------------------------------------------------

def scripted_run(scores_by_round: list[dict], replay: int = 0, finished=None, tie_tolerance: float = 0.0,
                 pick_by_round: list[float] | None = None):
    """Run the loop with scores looked up per round (pick scores: the round's best selection score unless given);
    returns (rounds, sets trained per round, expansions)."""
    trained, expansions = [], []
    names = list(scores_by_round[0])

    def train_round(index, sets):
        trained.append(list(sets))
        return {name: scores_by_round[index][name] for name in sets}

    def score_pick(record):
        return pick_by_round[record.index] if pick_by_round else record.selection_score

    def expand(record):
        expansions.append(record.index)
        return 3, 2, {}

    already_added = sum(record.added for record in finished or [])  # a resumed run reloads what was added
    rounds = run_rounds(names, train_round, score_pick, expand, lambda: 100 + already_added + 2 * len(expansions),
                        replay=replay, tie_tolerance=tie_tolerance, finished=finished)
    return rounds, trained, expansions


def test_the_worst_set_goes_with_every_set_tied_with_it():
    assert sets_to_remove({"a": 0.7, "b": 0.5, "c": 0.5, "d": 0.9}) == ["b", "c"]
    assert sets_to_remove({"a": 0.7, "b": 0.5, "c": 0.52}, tie_tolerance=0.03) == ["b", "c"]
    assert sets_to_remove({"a": 0.7, "b": 0.5}) == ["b"]


def test_when_every_set_ties_the_first_in_grid_order_stays():
    assert sets_to_remove({"a": 0.5, "b": 0.5, "c": 0.5}) == ["b", "c"]
    assert sets_to_remove({"a": 0.5}) == ["a"]


def test_sets_are_pruned_until_none_is_left_and_the_last_round_expands_nothing():
    scores = [{"a": 0.6, "b": 0.5, "c": 0.7, "d": 0.65},
              {"a": 0.62, "c": 0.75, "d": 0.7},
              {"c": 0.8, "d": 0.7},
              {"c": 0.85}]
    rounds, trained, expansions = scripted_run(scores)
    assert trained == [["a", "b", "c", "d"], ["a", "c", "d"], ["c", "d"], ["c"]]
    assert [r.removed for r in rounds] == [["b"], ["a"], ["d"], ["c"]]
    assert expansions == [0, 1, 2]               # the final round's points would train nothing
    assert [r.train_size for r in rounds] == [100, 102, 104, 106]
    assert rounds[-1].added == 0 and rounds[0].added == 2
    assert returned_round(rounds).index == 3 and returned_round(rounds).best_set == "c"


def test_the_returned_round_is_the_best_on_the_pick_share_not_on_the_selection_share():
    # Selection scores rise round after round (the added points flatter them); the pick share says round 1.
    scores = [{"a": 0.6, "b": 0.5, "c": 0.55}, {"a": 0.7, "c": 0.65}, {"a": 0.9}]
    rounds, _, _ = scripted_run(scores, pick_by_round=[0.60, 0.66, 0.62])
    assert [r.pick_score for r in rounds] == [0.60, 0.66, 0.62]
    assert max(rounds, key=lambda r: r.selection_score).index == 2
    assert returned_round(rounds).index == 1 and returned_round(rounds).best_set == "a"
    tied, _, _ = scripted_run(scores, pick_by_round=[0.7, 0.7, 0.5])
    assert returned_round(tied).index == 1                                  # a tie goes to the later round


def test_ties_remove_several_sets_at_once_so_there_are_fewer_rounds_than_sets():
    scores = [{"a": 0.5, "b": 0.5, "c": 0.7}, {"c": 0.8}]
    rounds, trained, _ = scripted_run(scores)
    assert trained == [["a", "b", "c"], ["c"]]


def test_replay_repeats_each_round_before_it_prunes():
    scores = [{"a": 0.6, "b": 0.5}, {"a": 0.7, "b": 0.6}, {"a": 0.8}, {"a": 0.9}]
    rounds, trained, expansions = scripted_run(scores, replay=1)
    assert [(r.replay_round, r.removed) for r in rounds] == [(0, []), (1, ["b"]), (0, []), (1, ["a"])]
    assert trained == [["a", "b"], ["a", "b"], ["a"], ["a"]]
    assert expansions == [0, 1, 2]


def test_a_resumed_loop_continues_after_its_last_finished_round():
    scores = [{"a": 0.6, "b": 0.5, "c": 0.7}, {"a": 0.6, "c": 0.7}, {"c": 0.9}]
    full, _, _ = scripted_run(scores)
    resumed, trained, _ = scripted_run(scores, finished=full[:1])
    assert trained == [["a", "c"], ["c"]]
    assert [r.to_json() for r in resumed] == [r.to_json() for r in full]


def test_the_grid_expands_to_every_combination_with_readable_names():
    sets = expand_grid({"learning_rate": [1e-4, 1e-5], "weight_decay": [0, 10], "warmup_ratio": [0.4],
                        "batch_size": [8], "seed": [0, 1, 2]})
    assert len(sets) == 12 and len({set_name(s) for s in sets}) == 12
    assert set_name(sets[0]) == "lr0.0001_wd0_wu0.4_bs8_seed0"
    with pytest.raises(ValueError, match="lacks seed"):
        expand_grid({"learning_rate": [1e-4], "weight_decay": [0], "warmup_ratio": [0], "batch_size": [8]})


def test_the_three_shares_are_disjoint_cover_the_split_and_change_with_the_seed():
    train, selection, pick = share_indices(100, 0.2, 0.15, seed=0)
    assert (len(train), len(selection), len(pick)) == (65, 20, 15)
    assert sorted(train + selection + pick) == list(range(100))                # disjoint, nothing lost
    assert share_indices(100, 0.2, 0.15, seed=0) == (train, selection, pick)   # a seed gives the same shares
    other = share_indices(100, 0.2, 0.15, seed=1)
    assert other[1] != selection and other[2] != pick
    with pytest.raises(ValueError, match="nothing is left to train on"):
        share_indices(10, 0.5, 0.5, seed=0)


def test_a_models_seed_mixes_the_runs_seed_and_its_sets_seed():
    seeds = {model_seed(run, grid) for run in (0, 1, 2) for grid in (0, 1)}
    assert len(seeds) == 6                                                     # every pair its own seed
    assert model_seed(1, 0) == model_seed(1, 0) and model_seed(1, 0) != model_seed(0, 1)


def test_the_shares_must_leave_rows_to_train_on():
    config = StudentConfig(max_length=32, selection_fraction=0.5, pick_fraction=0.5, seed=0, epochs=1,
                           max_grad_norm=1.0, adam_epsilon=1e-6, extra_layer=False, init_range=0.03, dropout=0.1,
                           eval_batch_size=8)
    assert "must leave part of the training split" in check_student_config(config)
    config.pick_fraction = 0.2
    assert check_student_config(config) is None


def test_a_regression_point_is_wrong_when_its_rounded_prediction_misses():
    assert wrong(np.array([1.2, 3.6, 2.4]), np.array([1.0, 3.0, 2.0]), num_labels=1).tolist() == [1]
    assert wrong(np.array([0, 1, 1]), np.array([0, 0, 1]), num_labels=2).tolist() == [1]


# ---- Bort's classification head -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_folder())


def tiny_config(tokenizer, **extra) -> BertConfig:
    return BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128, **extra)


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory, tokenizer):
    """A masked-LM student without a pooler, like the distilled Bort students."""
    folder = tmp_path_factory.mktemp("student")
    torch.manual_seed(0)
    BertForMaskedLM(tiny_config(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_bort_head_is_uniform_with_an_extra_layer_and_loads_back_everywhere(student_folder, tmp_path):
    torch.manual_seed(0)
    model = build_classifier(student_folder, 2, extra_layer=True, init_range=0.05, dropout=0.2)
    linears = [model.classifier[0], model.classifier[-1], model.bert.pooler.dense]  # the pooler was missing: new
    for linear in linears:
        assert linear.weight.abs().max() <= 0.05 and linear.weight.abs().max() > 0.04  # U(-r, r), not N(0, 0.02)
        assert torch.all(linear.bias == 0)
    assert model.classifier[2].p == 0.2 and model.dropout.p == 0.2
    model.save_pretrained(tmp_path / "saved")
    reloaded = load_for_classification(str(tmp_path / "saved"), 2)  # what evaluate and the table use
    ids = torch.tensor([[101, 2023, 2003, 102]])
    assert torch.allclose(model.eval()(input_ids=ids).logits, reloaded(input_ids=ids).logits)
    plain = build_classifier(str(tmp_path / "saved"), 2, extra_layer=False, init_range=0.05, dropout=0.1)
    assert isinstance(plain.classifier, torch.nn.Linear)          # a new head, not the old one
    assert torch.equal(plain.bert.pooler.dense.weight, model.bert.pooler.dense.weight)  # kept: in the checkpoint


# ---- the stage on tiny models ---------------------------------------------------------------------------------

NOUNS = ["baker", "teacher", "pilot", "farmer", "singer", "doctor", "lawyer", "painter"]
VERBS = ["visited", "called", "helped", "thanked", "followed"]


def write_task(folder) -> str:
    """A small sentence-pair task in the pipeline's raw layout."""
    folder.mkdir()
    rows = [{"idx": i, "label": i % 2,
             "sentence1": f"The {NOUNS[i % 8]} {VERBS[i % 5]} the {NOUNS[(i + 3) % 8]} today.",
             "sentence2": f"The {NOUNS[(i + 3) % 8]} was {VERBS[i % 5]} by the {NOUNS[i % 8]} on day {i}."}
            for i in range(48)]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "task.json").write_text(json.dumps({
        "name": "gen_mrpc", "num_labels": 2, "metrics": ["accuracy"], "text_columns": ["sentence1", "sentence2"],
        "dev_split": "validation", "split_sizes": {"train": 48}}))
    return str(folder)


def write_teacher(folder, tokenizer) -> str:
    """A teacher that answers 1 whatever it reads: every added point must carry label 1."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(tokenizer, num_labels=2))
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([-5.0, 5.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


STUDENT_FLAGS = ["--max-length", "32", "--selection-fraction", "0.375", "--pick-fraction", "0.25", "--epochs", "1",
                 "--init-range", "0.0346", "--dropout", "0.1", "--max-grad-norm", "1.0", "--adam-epsilon", "1e-6",
                 "--extra-layer", "false", "--eval-batch-size", "64", "--threads", "1"]


def agora_argv(student, teacher, raw, output, seed: int = 0) -> list[str]:
    grid = {"learning_rate": [1e-3, 3e-3], "weight_decay": [0.0], "warmup_ratio": [0.0], "batch_size": [8],
            "seed": [0, 1]}
    return ["--student", student, "--teacher", teacher, "--raw", raw, "--output", output, "--seed", str(seed),
            *STUDENT_FLAGS, "--grid", json.dumps(grid), "--psi", "lexical",
            "--lexical", json.dumps({"word_dropout": 0.2, "swaps": 1}), "--variants-per-error", "2", "--replay", "0",
            "--tie-tolerance", "0.0", "--masked-lm", "{}"]


def plain_argv(student, agora, raw, output, seed: int = 0) -> list[str]:
    return ["--student", student, "--agora", agora, "--raw", raw, "--output", output, "--seed", str(seed),
            *STUDENT_FLAGS]


def shares_of(raw: str, seed: int = 0):
    """The three shares agora_argv's fractions give (the same function the stages call)."""
    return load_task_splits(raw, 0.375, 0.25, seed)


def pick_score_of(model_folder, raw: str, seed: int = 0) -> float:
    """A saved model's score on the pick share, computed here independently of the stages' records."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    splits = shares_of(raw, seed)
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    pick = encode_rows(splits.pick, tokenizer, tuple(splits.spec["text_columns"]), 32)
    model = load_for_classification(str(model_folder), 2)
    return score_on(model, pick, splits.spec, 64, DataCollatorWithPadding(tokenizer), "cpu")[0]


@pytest.fixture(scope="module")
def agora_run(student_folder, tokenizer, tmp_path_factory):
    """One Agora run (seed 0) on the tiny task: (raw task folder, teacher folder, output folder)."""
    folder = tmp_path_factory.mktemp("agora_run")
    raw = write_task(folder / "raw")
    teacher = write_teacher(folder / "teacher", tokenizer)
    agora_finetune.main(agora_argv(student_folder, teacher, raw, str(folder / "reference")))
    return raw, teacher, folder / "reference"


def added_rows(output, record) -> list[dict]:
    return [json.loads(line) for line in (output / "rounds" / f"round_{record['index']:02d}" / "added.jsonl")
            .read_text().splitlines()]


def test_agora_adds_only_teacher_labelled_points_and_a_killed_run_resumes(agora_run, student_folder, tmp_path,
                                                                           monkeypatch):
    raw, teacher, reference = agora_run
    summary = json.loads((reference / "agora.json").read_text())
    assert summary["points_added"] > 0
    assert summary["train_size"]["final"] == summary["train_size"]["initial"] + summary["points_added"]
    training_texts = {(r["sentence1"], r["sentence2"]) for r in map(json.loads, open(f"{raw}/train.jsonl"))}
    for record in summary["rounds"]:
        added = added_rows(reference, record)
        assert len(added) == record["added"]
        assert all(row["label"] == 1 for row in added)              # the teacher's answer, never the source's
        assert not {(row["sentence1"], row["sentence2"]) for row in added} & training_texts
    assert sum(len(r["removed"]) for r in summary["rounds"]) == 4   # every set removed: the loop ended
    assert (reference / "config.json").is_file()                    # the best model, loadable

    # Killed during round 1: round 0 is kept and not trained again; the result equals the uninterrupted run.
    output = tmp_path / "resumed"
    original_train_round = AgoraRun.train_round

    def killed_in_round_1(self, index, sets):
        if index == 1:
            raise KeyboardInterrupt
        return original_train_round(self, index, sets)

    monkeypatch.setattr(AgoraRun, "train_round", killed_in_round_1)
    with pytest.raises(KeyboardInterrupt):
        agora_finetune.main(agora_argv(student_folder, teacher, raw, str(output)))
    assert (tmp_path / "resumed.rounds" / "round_00" / "round.json").is_file()
    trained_rounds = []

    def counting(self, index, sets):
        trained_rounds.append(index)
        return original_train_round(self, index, sets)

    monkeypatch.setattr(AgoraRun, "train_round", counting)
    agora_finetune.main(agora_argv(student_folder, teacher, raw, str(output)))
    assert trained_rounds[0] == 1
    resumed = json.loads((output / "agora.json").read_text())
    strip = lambda rounds: [{k: v for k, v in r.items() if k != "details"} for r in rounds]  # noqa: E731
    assert strip(resumed["rounds"]) == strip(summary["rounds"])
    assert not (tmp_path / "resumed.rounds").exists()               # moved inside the output at the end


def test_the_pick_share_is_held_out_and_picks_the_round_returned(agora_run):
    raw, _, output = agora_run
    summary = json.loads((output / "agora.json").read_text())
    splits = shares_of(raw)
    keys = {share: {text_key(row, ("sentence1", "sentence2")) for row in rows}
            for share, rows in (("train", splits.train), ("selection", splits.selection), ("pick", splits.pick))}
    assert not keys["pick"] & (keys["train"] | keys["selection"]) and not keys["train"] & keys["selection"]
    assert (summary["train_size"]["initial"], summary["selection_size"], summary["pick_size"]) == (18, 18, 12)
    added = {text_key(row, ("sentence1", "sentence2")) for record in summary["rounds"]
             for row in added_rows(output, record)}
    assert added and not added & keys["pick"]                               # nothing trained on is a pick row
    # every round's pick score is its model's score on the pick share, recomputed here from the saved model
    for entry in summary["round_scores"]:
        model = output / "rounds" / f"round_{entry['round']:02d}" / "model"
        assert entry["pick_score"] == pytest.approx(pick_score_of(model, raw))
    best_pick = max(entry["pick_score"] for entry in summary["round_scores"])
    assert summary["returned_pick_score"] == best_pick
    returned = output / "rounds" / f"round_{summary['returned_round']:02d}" / "model" / "model.safetensors"
    assert (output / "model.safetensors").read_bytes() == returned.read_bytes()


def test_the_stage_returns_the_round_the_pick_share_prefers(agora_run, student_folder, tmp_path, monkeypatch):
    raw, teacher, _ = agora_run
    # Round 0 best on the pick share, whatever the selection share says (it flatters the later rounds).
    monkeypatch.setattr(AgoraRun, "score_pick", lambda self, record: 1.0 if record.index == 0 else 0.0)
    output = tmp_path / "agora"
    agora_finetune.main(agora_argv(student_folder, teacher, raw, str(output)))
    summary = json.loads((output / "agora.json").read_text())
    assert len(summary["rounds"]) > 1 and summary["returned_round"] == 0
    assert [entry["pick_score"] for entry in summary["round_scores"]] == [1.0] + [0.0] * (len(summary["rounds"]) - 1)
    assert summary["returned_selection_score"] == summary["round_scores"][0]["selection_score"]
    round_0 = output / "rounds" / "round_00" / "model" / "model.safetensors"
    assert (output / "model.safetensors").read_bytes() == round_0.read_bytes()


def test_the_plain_baseline_keeps_its_best_epoch_on_the_pick_share(agora_run, student_folder, tmp_path):
    raw, _, agora = agora_run
    summary = json.loads((agora / "agora.json").read_text())
    output = tmp_path / "plain"
    agora_plain.main(plain_argv(student_folder, str(agora), raw, str(output)))
    plain = json.loads((output / "plain.json").read_text())
    assert plain["seed"] == 0 and plain["set"] == summary["first_round_best_set"]
    assert plain["training_examples"] >= summary["training_examples"]         # equal compute, at least
    assert len(plain["pick_scores"]) == plain["epochs"]                         # scored after every epoch
    assert plain["best_pick_score"] == max(score for _, score in plain["pick_scores"])
    assert pick_score_of(output, raw) == pytest.approx(plain["best_pick_score"])  # the epoch kept is that one
    with pytest.raises(ValueError, match="seed"):                               # another seed's shares: refused
        agora_plain.main(plain_argv(student_folder, str(agora), raw, str(tmp_path / "other"), seed=1))
