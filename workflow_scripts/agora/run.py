"""An Agora run on files: the student, the teacher, the task, the rounds on disk (resumable), the output; and
Agora's baseline at equal compute. The loop itself and its documented choices are in agora/loop.py.

    run, rounds = run_agora(student, teacher, raw, output, student_config, agora_config, logger, device)
    write_agora(run, rounds)

The training split is cut into three seeded shares (agora/loop.py: load_task_splits): rows trained on, the selection
share (ranks sets, gives the errors psi transforms) and the pick share (picks the model returned, and nothing else).

Every finished round is a checkpoint folder <output>.rounds/round_NN (core.resume: written whole, then renamed;
moved into <output>/rounds at the end):
    round.json   scores of every set, the best, the sets removed and surviving, errors, points added, time
    added.jsonl  the teacher-labelled points added after the round (with the dev point each came from)
    model/       the round's best model
A killed run started again with the same inputs, code and hyperparameters resumes after its last finished round.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from workflow_scripts.agora.loop import (Round, build_classifier, encode_rows, expand_grid, load_task_splits,
                                         model_seed, predictions, read_jsonl, returned_round, run_rounds, score_on,
                                         set_name, teacher_label, wrong)
from workflow_scripts.agora.psi import build_psi, deduplicate
from workflow_scripts.core.io_utils import read_json, write_checksums, write_json
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.resume import Checkpoints, fingerprint
from workflow_scripts.core.inference import predict_logits
from workflow_scripts.core.training import TrainingConfig, seed_everything, train

CODE_MODULE = "workflow_scripts.stages.agora_finetune"  # its code files are part of the resume fingerprint


@dataclass
class StudentConfig:
    """The student's classification head and its fine-tuning recipe, shared by Agora and its baseline (params.yaml
    agora, data.max_length; the seed is one of agora.seeds, given by the rule's path)."""
    max_length: int = field(metadata={"help": "truncation length in tokens"})
    selection_fraction: float = field(metadata={"help": "share of the training split held out to rank sets and find "
                                                        "errors"})
    pick_fraction: float = field(metadata={"help": "a second held-out share of the training split, used only to pick "
                                                   "the model returned"})
    seed: int = field(metadata={"help": "the run's seed: draws the shares and psi's choices, and with each set's grid "
                                        "seed, the models' initialization, shuffling and dropout"})
    epochs: int = field(metadata={"help": "passes over the training set per model"})
    max_grad_norm: float = field(metadata={"help": "global gradient-norm clip"})
    adam_epsilon: float = field(metadata={"help": "BERTAdam's epsilon (the authors' code)"})
    extra_layer: bool = field(metadata={"help": "true: an extra hidden layer before the classifier (Bort's CoLA "
                                                "head)"})
    init_range: float = field(metadata={"help": "classifier weights ~ U(-r, r)"})
    dropout: float = field(metadata={"help": "dropout in the classification head"})
    eval_batch_size: int = field(metadata={"help": "examples per forward pass when scoring (evaluate.batch_size)"})


@dataclass
class AgoraConfig:
    """Agora's loop (params.yaml agora)."""
    grid: dict = field(metadata={"help": "hyperparameter grid: {name: [values]}"})
    replay: int = field(metadata={"help": "rounds without pruning before each pruning step"})
    tie_tolerance: float = field(metadata={"help": "sets this close to the worst go with it"})
    psi: str = field(metadata={"choices": ["masked_lm", "lexical"], "help": "how errors are transformed"})
    masked_lm: dict = field(metadata={"help": "masked_lm psi: {model: folder, replace_probability, top_k}"})
    lexical: dict = field(metadata={"help": "lexical psi: {word_dropout, swaps}"})
    variants_per_error: int = field(metadata={"help": "new points psi makes per error"})


def check_student_config(config: StudentConfig) -> str | None:
    for flag, fraction in (("--selection-fraction", config.selection_fraction), ("--pick-fraction", config.pick_fraction)):
        if not 0 < fraction < 1:
            return f"{flag} must be in (0, 1)"
    if config.selection_fraction + config.pick_fraction >= 1:
        return "--selection-fraction and --pick-fraction together must leave part of the training split to train on"
    return None


def _label_counts(rows: list[dict]) -> dict:
    labels = [row["label"] for row in rows]
    if labels and isinstance(labels[0], float):
        return {"mean": float(np.mean(labels))}
    return {str(label): labels.count(label) for label in sorted(set(labels))}


class AgoraRun:
    """The state the loop's callbacks share: data, models, the best model of the current round."""

    def __init__(self, student: str, teacher: str, raw: str, output: str, student_config: StudentConfig,
                 agora_config: AgoraConfig, logger, device: str):
        from transformers import AutoTokenizer, DataCollatorWithPadding

        self.student, self.teacher_folder, self.output = student, teacher, output
        self.config, self.agora, self.logger, self.device = student_config, agora_config, logger, device
        splits = load_task_splits(raw, student_config.selection_fraction, student_config.pick_fraction,
                                  student_config.seed)
        self.spec, self.train_rows, self.selection_rows, self.pick_rows = (splits.spec, splits.train,
                                                                           splits.selection, splits.pick)
        self.num_labels = self.spec["num_labels"]
        self.text_columns = tuple(self.spec["text_columns"])
        self.tokenizer = AutoTokenizer.from_pretrained(student)
        self.collate_fn = DataCollatorWithPadding(self.tokenizer)
        self.selection = encode_rows(self.selection_rows, self.tokenizer, self.text_columns, student_config.max_length)
        self.pick = encode_rows(self.pick_rows, self.tokenizer, self.text_columns, student_config.max_length)
        self.sets = {set_name(hp): hp for hp in expand_grid(agora_config.grid)}
        inputs = {"student": student, "teacher": teacher, "raw": raw}
        if agora_config.psi == "masked_lm":
            inputs["masked_lm"] = agora_config.masked_lm["model"]
        self.rounds = Checkpoints(output, fingerprint(inputs=inputs, code_module=CODE_MODULE,
                                                      hyperparameters=[student_config, agora_config]),
                                  ".rounds", "round_", 2)
        self.added: list[dict] = []
        self.pending_added: list[dict] = []  # the points the current round added, written with the round
        self.best_model, self.best_logits = None, None  # the round's best model and its selection-share logits
        self.teacher, self.psi = None, None  # loaded on the first expansion

    def resume(self) -> list[Round]:
        """The finished rounds of an earlier run with the same fingerprint, and the points they added."""
        rounds = []
        for _, folder in self.rounds.consecutive():
            rounds.append(Round.from_json(read_json(os.path.join(folder, "round.json"))))
            self.added += read_jsonl(os.path.join(folder, "added.jsonl"))
        if rounds:
            self.logger.info("resuming after round %d (%d points added so far)", rounds[-1].index, len(self.added))
        return rounds

    def train_size(self) -> int:
        return len(self.train_rows) + len(self.added)

    def train_round(self, index: int, set_names: list[str]) -> dict[str, float]:
        dataset = encode_rows(self.train_rows + self.added, self.tokenizer, self.text_columns, self.config.max_length)
        scores, best_score = {}, None
        for name in set_names:
            model = self.train_one(self.sets[name], dataset, f"round {index} {name}")
            scores[name], logits = score_on(model, self.selection, self.spec, self.config.eval_batch_size,
                                            self.collate_fn, self.device)
            self.logger.info("round %d, set %s: selection %s %.4f", index, name, self.spec["metrics"][0], scores[name])
            if best_score is None or scores[name] > best_score:
                best_score, self.best_model, self.best_logits = scores[name], model.cpu(), logits
        return scores

    def score_pick(self, record: Round) -> float:
        """The round's best model on the pick share: only the choice of the returned model reads it."""
        score, _ = score_on(self.best_model, self.pick, self.spec, self.config.eval_batch_size, self.collate_fn,
                            self.device, share="pick")
        self.logger.info("round %d: best set %s, pick %s %.4f", record.index, record.best_set, self.spec["metrics"][0],
                         score)
        return score

    def train_one(self, hyperparameters: dict, dataset, description: str):
        seed_everything(model_seed(self.config.seed, hyperparameters["seed"]))  # the head, shuffling, dropout
        model = build_classifier(self.student, self.num_labels, extra_layer=self.config.extra_layer,
                                 init_range=self.config.init_range, dropout=self.config.dropout)
        config = TrainingConfig(epochs=self.config.epochs, max_grad_norm=self.config.max_grad_norm,
                                adam_epsilon=self.config.adam_epsilon, evaluate_every_steps=0, patience=0,
                                **hyperparameters)
        train(model, dataset, config, self.collate_fn, self.device, description=description)
        return model

    def expand(self, record: Round) -> tuple[int, int, dict]:
        """Psi on the best model's selection errors, teacher-labelled, de-duplicated, added. A point equal to a pick
        row is dropped too: the pick share must stay unseen by training."""
        error_ids = wrong(predictions(self.best_logits, self.num_labels), np.asarray(self.selection["labels"]),
                          self.num_labels)
        errors = [self.selection_rows[i] for i in error_ids]
        rng = np.random.default_rng([self.config.seed, record.index])  # the same points whether resumed or not
        generated = self.load_psi().transform(errors, self.text_columns, self.agora.variants_per_error, rng)
        fresh = deduplicate(generated, self.train_rows + self.added + self.selection_rows + self.pick_rows,
                            self.text_columns)
        labelled = self.label(fresh)
        self.added += labelled
        details = {"generated": len(generated), "duplicates_dropped": len(generated) - len(fresh),
                   "teacher_label_counts": _label_counts(labelled)}
        self.logger.info("round %d: %d errors -> %d generated -> %d added", record.index, len(errors),
                         len(generated), len(labelled))
        self.pending_added = labelled
        return len(errors), len(labelled), details

    def load_psi(self):
        if self.psi is None:
            masked_lm = dict(self.agora.masked_lm)
            if "model" in masked_lm:
                masked_lm["model_folder"] = masked_lm.pop("model")
            self.psi = build_psi(self.agora.psi, {"masked_lm": {**masked_lm, "device": self.device},
                                                  "lexical": self.agora.lexical})
        return self.psi

    def label(self, rows: list[dict]) -> list[dict]:
        """The teacher's labels (never the original's: psi drops them) and its confidence."""
        if not rows:
            return []
        from transformers import AutoTokenizer, DataCollatorWithPadding

        if self.teacher is None:
            self.teacher = load_for_classification(self.teacher_folder, self.num_labels)
            self.teacher_tokenizer = AutoTokenizer.from_pretrained(self.teacher_folder)
        unlabelled = [{**row, "label": 0} for row in rows]  # encode_rows wants a label column
        dataset = encode_rows(unlabelled, self.teacher_tokenizer, self.text_columns, self.config.max_length)
        logits = predict_logits(self.teacher, dataset, self.config.eval_batch_size,
                                DataCollatorWithPadding(self.teacher_tokenizer), self.device, description="teacher")
        labels, confidence = teacher_label(logits, self.num_labels)
        return [{**row, "label": label, "teacher_confidence": round(p, 4)}
                for row, label, p in zip(rows, labels, confidence)]

    def save_round(self, record: Round, seconds: float) -> None:
        record.details["seconds"] = round(seconds, 2)
        record.details["training_examples"] = self.config.epochs * record.train_size * len(record.scores)
        with self.rounds.write(record.index) as folder:
            save_checkpoint(self.best_model, self.tokenizer, os.path.join(folder, "model"))
            with open(os.path.join(folder, "added.jsonl"), "w") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in self.pending_added)
            write_json(os.path.join(folder, "round.json"), record.to_json())
        self.pending_added = []


def run_agora(student: str, teacher: str, raw: str, output: str, student_config: StudentConfig,
              agora_config: AgoraConfig, logger, device: str) -> tuple[AgoraRun, list[Round]]:
    """Agora's rounds until no set is left (after the finished rounds of an interrupted run)."""
    run = AgoraRun(student, teacher, raw, output, student_config, agora_config, logger, device)
    finished = run.resume()
    started = time.perf_counter()

    def on_round(record: Round) -> None:
        nonlocal started
        run.save_round(record, time.perf_counter() - started)
        started = time.perf_counter()

    rounds = run_rounds(list(run.sets), run.train_round, run.score_pick, run.expand, run.train_size,
                        replay=agora_config.replay, tie_tolerance=agora_config.tie_tolerance, finished=finished,
                        on_round=on_round)
    return run, rounds


def write_agora(run: AgoraRun, rounds: list[Round]) -> None:
    """Copy the returned round's model to the output, with agora.json; move the rounds inside."""
    chosen = returned_round(rounds)
    summary = {
        "task": run.spec["name"], "seed": run.config.seed, "student": run.student, "teacher": run.teacher_folder,
        "metric": run.spec["metrics"][0], "returned_round": chosen.index, "returned_set": chosen.best_set,
        "returned_pick_score": chosen.pick_score, "returned_selection_score": chosen.selection_score,
        "first_round_best_set": rounds[0].best_set, "sets": run.sets,
        "round_scores": [{"round": r.index, "set": r.best_set, "selection_score": r.selection_score,
                          "pick_score": r.pick_score} for r in rounds],
        "rounds": [r.to_json() for r in rounds], "points_added": sum(r.added for r in rounds),
        "train_size": {"initial": len(run.train_rows), "final": run.train_size()},
        "selection_size": len(run.selection_rows), "pick_size": len(run.pick_rows),
        "training_examples": sum(r.details["training_examples"] for r in rounds),
        "seconds": round(sum(r.details["seconds"] for r in rounds), 2),
    }
    output = run.output
    staging = output.rstrip("/") + ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(os.path.join(run.rounds.folder(chosen.index), "model"), staging)
    write_json(os.path.join(staging, "agora.json"), summary)
    run.rounds.move_into(staging, "rounds")
    write_checksums(staging)  # the copied model's files, agora.json (each round has its own)
    shutil.rmtree(output, ignore_errors=True)
    os.replace(staging, output)
    run.logger.info("wrote %s: round %d (%s), pick %s %.4f, %d points added, %.0f s", output, chosen.index,
                    chosen.best_set, summary["metric"], chosen.pick_score, summary["points_added"], summary["seconds"])


# ---- the baseline at equal compute --------------------------------------------------------------------------------

def equal_compute_epochs(agora_summary: dict, train_size: int) -> int:
    """Epochs over `train_size` rows that process at least as many examples as all of Agora's models did."""
    return max(1, math.ceil(agora_summary["training_examples"] / train_size))


def plain_finetune(student: str, agora_folder: str, raw: str, config: StudentConfig, logger, device: str):
    """(model, tokenizer, plain.json record): the student fine-tuned plainly on the rows Agora started from, with
    the best set of Agora's first round, for as many training examples as Agora's models saw, scored on the pick
    share after every epoch, keeping its best epoch: the rule Agora returns its model by."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    summary = read_json(os.path.join(agora_folder, "agora.json"))
    hyperparameters = summary["sets"][summary["first_round_best_set"]]
    splits = load_task_splits(raw, config.selection_fraction, config.pick_fraction, config.seed)
    if summary["seed"] != config.seed or len(splits.train) != summary["train_size"]["initial"]:
        raise ValueError(f"{agora_folder} was run with seed {summary['seed']} on {summary['train_size']['initial']} "
                         f"training rows, this baseline has seed {config.seed} and {len(splits.train)} rows: "
                         "the seed or the shares' fractions differ")
    spec = splits.spec
    tokenizer = AutoTokenizer.from_pretrained(student)
    collate_fn = DataCollatorWithPadding(tokenizer)
    text_columns = tuple(spec["text_columns"])
    train_set = encode_rows(splits.train, tokenizer, text_columns, config.max_length)
    pick = encode_rows(splits.pick, tokenizer, text_columns, config.max_length)
    epochs = equal_compute_epochs(summary, len(splits.train))
    steps_per_epoch = math.ceil(len(splits.train) / hyperparameters["batch_size"])

    started = time.perf_counter()
    seed_everything(model_seed(config.seed, hyperparameters["seed"]))  # as Agora's first model of this set
    model = build_classifier(student, spec["num_labels"], extra_layer=config.extra_layer,
                             init_range=config.init_range, dropout=config.dropout)
    training = TrainingConfig(epochs=epochs, max_grad_norm=config.max_grad_norm, adam_epsilon=config.adam_epsilon,
                              evaluate_every_steps=steps_per_epoch, patience=epochs, **hyperparameters)
    logger.info("plain fine-tune with %s for %d epochs (%d examples; Agora: %d)", summary["first_round_best_set"],
                epochs, epochs * len(splits.train), summary["training_examples"])
    history = train(model, train_set, training, collate_fn, device, description=f"plain {spec['name']}",
                    selection_score=lambda m: score_on(m, pick, spec, config.eval_batch_size, collate_fn, device,
                                                       share="pick")[0])
    seconds = time.perf_counter() - started
    record = {"task": spec["name"], "seed": config.seed, "student": student, "set": summary["first_round_best_set"],
              "hyperparameters": hyperparameters, "epochs": epochs, "training_examples": epochs * len(splits.train),
              "agora_training_examples": summary["training_examples"], "metric": spec["metrics"][0],
              "best_pick_score": max(score for _, score in history.selection_scores), "best_step": history.best_step,
              "pick_scores": history.selection_scores, "seconds": round(seconds, 2)}
    return model, tokenizer, record
