"""Stage agora_finetune: fine-tune a student with Agora (see workflow_scripts/agora/loop.py for the loop and its
documented choices).

Inputs: a student checkpoint (default: the distilled Bort student; any folder the pipeline writes), a teacher
("Socrates", default: the task's initial fine-tune), the task, and the hyperparameter grid. Every finished round
is a folder under <output>.rounds/round_NN (moved into <output>/rounds at the end):
    round.json   scores of every set, the best, the sets removed and surviving, errors, points added, time
    added.jsonl  the teacher-labelled points added after the round (with the dev point each came from)
    model/       the round's best model
round.json is written last, so a killed run resumes after the last complete round. The output folder holds the
best model over all rounds (selection split) and agora.json (the rounds, wall time, training examples).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import numpy as np
from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.agora.loop import (Round, best_round, build_classifier, encode_rows, expand_grid, load_task_rows, predictions,
                    read_jsonl, run_rounds, score_on, set_name, teacher_label, wrong)
from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.core.io_utils import read_json, write_json
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.agora.psi import build_psi, deduplicate
from workflow_scripts.core.training import TrainingConfig, seed_everything, train

EXECUTION_ARGS = ("threads", "device", "log_file", "output", "eval_batch_size")
ROUND_PREFIX = "round_"


def add_classifier_args(parser) -> None:
    """The student's head and its fine-tuning recipe (shared with agora_plain)."""
    group = parser.add_argument_group("student and its classification head (params.yaml agora)")
    group.add_argument("--student", required=True, help="checkpoint folder of the student (Timaeus)")
    group.add_argument("--raw", required=True, help="raw task folder (data/<task>/raw): psi works on text")
    group.add_argument("--max-length", type=int, required=True, help="truncation length in tokens")
    group.add_argument("--selection-fraction", type=float, required=True,
                       help="share of the training split held out to rank sets and find errors")
    group.add_argument("--seed", type=int, default=0, help="seeds the selection split and psi")
    group.add_argument("--epochs", type=int, required=True, help="passes over the training set per model")
    group.add_argument("--max-grad-norm", type=float, default=1.0)
    group.add_argument("--adam-epsilon", type=float, default=1e-6, help="BERTAdam's epsilon (the authors' code)")
    group.add_argument("--extra-layer", type=json.loads, default=False,
                       help="true: an extra hidden layer before the classifier (Bort's CoLA head)")
    group.add_argument("--init-range", type=float, required=True, help="classifier weights ~ U(-r, r)")
    group.add_argument("--dropout", type=float, required=True, help="dropout in the classification head")
    group.add_argument("--eval-batch-size", type=int, default=64)


def parse_args(argv):
    parser = stage_parser(__doc__)
    add_classifier_args(parser)
    parser.add_argument("--teacher", required=True, help="checkpoint folder of the teacher (Socrates)")
    parser.add_argument("--output", required=True, help="folder for the best model, agora.json and the rounds")
    parser.add_argument("--grid", type=json.loads, required=True, help="hyperparameter grid: {name: [values]}")
    parser.add_argument("--replay", type=int, default=0, help="rounds without pruning before each pruning step")
    parser.add_argument("--tie-tolerance", type=float, default=0.0, help="sets this close to the worst go with it")
    parser.add_argument("--psi", required=True, help="masked_lm or lexical")
    parser.add_argument("--masked-lm", type=json.loads, default={},
                        help="masked_lm psi: {model: folder, replace_probability, top_k}")
    parser.add_argument("--lexical", type=json.loads, default={}, help="lexical psi: {word_dropout, swaps}")
    parser.add_argument("--variants-per-error", type=int, required=True, help="new points psi makes per error")
    args = parser.parse_args(argv)
    for name in ("selection_fraction",):
        if not 0 < getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be in (0, 1)")
    return args


def fingerprint(args) -> str:
    """What finished rounds must share with this run to be resumed: the arguments, and the size and modification
    time of the student's, the teacher's and the task's files (a re-made student invalidates old rounds)."""
    relevant = {k: v for k, v in sorted(vars(args).items()) if k not in EXECUTION_ARGS}
    for name, path in (("student", os.path.join(args.student, "model.safetensors")),
                       ("teacher", os.path.join(args.teacher, "model.safetensors")),
                       ("task", os.path.join(args.raw, "train.jsonl"))):
        if os.path.exists(path):
            relevant[f"{name}_file"] = [os.stat(path).st_size, os.stat(path).st_mtime_ns]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rounds_root(output: str) -> str:
    # Beside the output: Snakemake deletes a job's outputs before it reruns the job.
    return output.rstrip("/") + ".rounds"


def finished_rounds(root: str, run_fingerprint: str, logger) -> list[Round]:
    """The complete rounds of this run, in order; rounds of other arguments are removed."""
    rounds = []
    names = sorted(n for n in os.listdir(root) if n.startswith(ROUND_PREFIX)) if os.path.isdir(root) else []
    for name in names:
        path = os.path.join(root, name, "round.json")
        if not os.path.isfile(path):
            break  # round.json is written last: this round was interrupted
        content = read_json(path)
        if content.pop("fingerprint") != run_fingerprint:
            logger.warning("rounds in %s are from other arguments: starting over", root)
            shutil.rmtree(root)
            return []
        rounds.append(Round.from_json(content))
    for name in names[len(rounds):]:
        shutil.rmtree(os.path.join(root, name))
    return rounds


class AgoraRun:
    """The state the loop's callbacks share: data, models, the best model of the current round."""

    def __init__(self, args, logger, device):
        self.args, self.logger, self.device = args, logger, device
        self.spec, self.train_rows, self.selection_rows = load_task_rows(args.raw, args.selection_fraction, args.seed)
        self.num_labels = self.spec["num_labels"]
        self.text_columns = tuple(self.spec["text_columns"])
        self.tokenizer = AutoTokenizer.from_pretrained(args.student)
        self.collate_fn = DataCollatorWithPadding(self.tokenizer)
        self.selection = encode_rows(self.selection_rows, self.tokenizer, self.text_columns, args.max_length)
        self.sets = {set_name(hp): hp for hp in expand_grid(args.grid)}
        self.root = rounds_root(args.output)
        self.fingerprint = fingerprint(args)
        self.added: list[dict] = []
        self.pending_added: list[dict] = []  # the points the current round added, written with the round
        self.best_model, self.best_logits = None, None  # the round's best model and its selection-split logits
        self.teacher, self.psi = None, None  # loaded on the first expansion

    def resume(self) -> list[Round]:
        rounds = finished_rounds(self.root, self.fingerprint, self.logger)
        for record in rounds:
            self.added += read_jsonl(os.path.join(self.round_folder(record.index), "added.jsonl"))
        if rounds:
            self.logger.info("resuming after round %d (%d points added so far)", rounds[-1].index, len(self.added))
        return rounds

    def round_folder(self, index: int) -> str:
        return os.path.join(self.root, f"{ROUND_PREFIX}{index:02d}")

    def train_size(self) -> int:
        return len(self.train_rows) + len(self.added)

    def train_round(self, index: int, set_names: list[str]) -> dict[str, float]:
        dataset = encode_rows(self.train_rows + self.added, self.tokenizer, self.text_columns, self.args.max_length)
        scores, best_score = {}, None
        for name in set_names:
            model = self.train_one(self.sets[name], dataset, f"round {index} {name}")
            scores[name], logits = score_on(model, self.selection, self.spec, self.args.eval_batch_size,
                                            self.collate_fn, self.device)
            self.logger.info("round %d, set %s: selection %s %.4f", index, name, self.spec["metrics"][0], scores[name])
            if best_score is None or scores[name] > best_score:
                best_score, self.best_model, self.best_logits = scores[name], model.cpu(), logits
        return scores

    def train_one(self, hyperparameters: dict, dataset, description: str):
        seed_everything(hyperparameters["seed"])  # the head's initialization, then shuffling and dropout
        model = build_classifier(self.args.student, self.num_labels, extra_layer=self.args.extra_layer,
                                 init_range=self.args.init_range, dropout=self.args.dropout)
        config = TrainingConfig(epochs=self.args.epochs, max_grad_norm=self.args.max_grad_norm,
                                adam_epsilon=self.args.adam_epsilon, **hyperparameters)
        train(model, dataset, config, self.collate_fn, self.device, description=description)
        return model

    def expand(self, record: Round) -> tuple[int, int, dict]:
        """Psi on the best model's selection errors, teacher-labelled, de-duplicated, added."""
        error_ids = wrong(predictions(self.best_logits, self.num_labels), np.asarray(self.selection["labels"]), self.num_labels)
        errors = [self.selection_rows[i] for i in error_ids]
        rng = np.random.default_rng([self.args.seed, record.index])  # the same points whether resumed or not
        generated = self.load_psi().transform(errors, self.text_columns, self.args.variants_per_error, rng)
        fresh = deduplicate(generated, self.train_rows + self.added + self.selection_rows, self.text_columns)
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
            masked_lm = dict(self.args.masked_lm)
            if "model" in masked_lm:
                masked_lm["model_folder"] = masked_lm.pop("model")
            self.psi = build_psi(self.args.psi, {"masked_lm": {**masked_lm, "device": self.device},
                                                 "lexical": self.args.lexical})
        return self.psi

    def label(self, rows: list[dict]) -> list[dict]:
        """The teacher's labels (never the original's: psi drops them) and its confidence."""
        if not rows:
            return []
        from workflow_scripts.core.training import predict_logits

        if self.teacher is None:
            self.teacher = load_for_classification(self.args.teacher, self.num_labels)
            self.teacher_tokenizer = AutoTokenizer.from_pretrained(self.args.teacher)
        unlabelled = [{**row, "label": 0} for row in rows]  # encode_rows wants a label column
        dataset = encode_rows(unlabelled, self.teacher_tokenizer, self.text_columns, self.args.max_length)
        logits = predict_logits(self.teacher, dataset, self.args.eval_batch_size,
                                DataCollatorWithPadding(self.teacher_tokenizer), self.device, description="teacher")
        labels, confidence = teacher_label(logits, self.num_labels)
        return [{**row, "label": label, "teacher_confidence": round(p, 4)}
                for row, label, p in zip(rows, labels, confidence)]

    def save_round(self, record: Round, seconds: float) -> None:
        folder = self.round_folder(record.index)
        os.makedirs(folder, exist_ok=True)
        save_checkpoint(self.best_model, self.tokenizer, os.path.join(folder, "model"))
        with open(os.path.join(folder, "added.jsonl"), "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in self.pending_added)
        self.pending_added = []
        record.details["seconds"] = round(seconds, 2)
        record.details["training_examples"] = self.args.epochs * record.train_size * len(record.scores)
        write_json(os.path.join(folder, "round.json"), {**record.to_json(), "fingerprint": self.fingerprint})


def _label_counts(rows: list[dict]) -> dict:
    labels = [row["label"] for row in rows]
    if labels and isinstance(labels[0], float):
        return {"mean": float(np.mean(labels))}
    return {str(label): labels.count(label) for label in sorted(set(labels))}


def finish(run: AgoraRun, rounds: list[Round]) -> None:
    """Copy the best round's model to the output, with agora.json; move the rounds inside."""
    chosen = best_round(rounds)
    summary = {
        "task": run.spec["name"], "student": run.args.student, "teacher": run.args.teacher,
        "selection_metric": run.spec["metrics"][0], "best_round": chosen.index, "best_set": chosen.best_set,
        "best_selection_score": chosen.scores[chosen.best_set], "first_round_best_set": rounds[0].best_set,
        "sets": run.sets, "rounds": [r.to_json() for r in rounds], "points_added": sum(r.added for r in rounds),
        "train_size": {"initial": len(run.train_rows), "final": run.train_size()},
        "selection_size": len(run.selection_rows),
        "training_examples": sum(r.details["training_examples"] for r in rounds),
        "seconds": round(sum(r.details["seconds"] for r in rounds), 2),
    }
    model_folder = os.path.join(run.round_folder(chosen.index), "model")
    output = run.args.output
    staging = output.rstrip("/") + ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_folder, staging)
    write_json(os.path.join(staging, "agora.json"), summary)
    shutil.move(run.root, os.path.join(staging, "rounds"))
    shutil.rmtree(output, ignore_errors=True)
    os.replace(staging, output)
    run.logger.info("wrote %s: best round %d (%s), selection %s %.4f, %d points added, %.0f s", output, chosen.index,
                    chosen.best_set, summary["selection_metric"], summary["best_selection_score"],
                    summary["points_added"], summary["seconds"])


def main(argv=None) -> None:
    args = parse_args(argv)
    logger, device = start_stage(args)
    run = AgoraRun(args, logger, device)
    finished = run.resume()
    started = time.perf_counter()

    def on_round(record: Round) -> None:
        nonlocal started
        run.save_round(record, time.perf_counter() - started)
        started = time.perf_counter()

    rounds = run_rounds(list(run.sets), run.train_round, run.expand, run.train_size, replay=args.replay,
                        tie_tolerance=args.tie_tolerance, finished=finished, on_round=on_round)
    finish(run, rounds)


if __name__ == "__main__":
    main()
