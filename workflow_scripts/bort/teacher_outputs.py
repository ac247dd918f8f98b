"""T's outputs at the masked positions, computed once and read by every FPTAS candidate and by KD pretraining.

Running T inside every training step made a KD step cost 2.9x an MLM step, and every candidate re-ran T on the
same batches. The training stream is deterministic (data.corpus.training_batches: step s's rows and masks depend
only on the seed, the batch size and s), so T's outputs at its masked positions can be written once:

    outputs = compute_teacher_outputs(teacher, train_blocks, heldout_blocks, tokenizer, config)
    save_teacher_outputs("models/bort/teacher_outputs", outputs, info)
    cache = TeacherOutputs.load("models/bort/teacher_outputs")
    batches = cache.attach(training_batches(...), batch_size=32, seed=0, temperature=2.0)   # adds teacher_* tensors
    heldout_teacher = cache.heldout(heldout_batches, temperature=1.0)                     # one TeacherTopK per batch

What is stored per masked position (row-major order within a batch, the order of `labels != -100`): the ids and
raw logits of T's k largest logits, and, for each temperature tau used downstream, the log-sum-exp of all logits / tau
and of the tail (the logits outside the top k) / tau. With these the distillation loss treats the tail as one
bucket whose teacher mass is exact (distillation.teacher_cross_entropy); with k = vocabulary size it is the full
distillation loss. The targets are stored too: a consumer whose batches differ from the cached stream (another
seed, batch size or masking) is stopped with a clear error instead of distilling from the wrong positions.

A stream is keyed on its batch size and its format: plain blocks (stream_b<batch>.safetensors), or the sentence
pairs of a KD run with a sentence objective (stream_b<batch>_sop.safetensors, _nsp), which the stage computes only
when such a run asks for them (params.teacher_output_streams). The held-out file is the plain held-out split's.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

from workflow_scripts.bort.distillation import TeacherTopK, masked_logits
from workflow_scripts.core.io_utils import atomic_output_dir, load_safetensors, read_json, verify_checksums, write_json
from workflow_scripts.data.corpus import heldout_masked_batches, training_batches

INFO_FILE = "teacher_outputs.json"
HELDOUT_FILE = "heldout.safetensors"
# Keys a batch gains from TeacherOutputs.attach (every tensor of a batch is moved to the training device).
BATCH_KEYS = ("teacher_ids", "teacher_logits", "teacher_logsumexp", "teacher_tail_logsumexp")


def stream_file(batch_size: int, sentence_objective: str = "none") -> str:
    pairs = "" if sentence_objective == "none" else f"_{sentence_objective}"
    return f"stream_b{batch_size}{pairs}.safetensors"


def stream_key(stream: list) -> tuple[int, int, str]:
    """(batch_size, steps, sentence objective) of a streams entry: [batch_size, steps] (plain blocks) or
    [batch_size, steps, "sop" | "nsp"] (sentence pairs)."""
    batch_size, steps, *pairs = stream
    return batch_size, steps, pairs[0] if pairs else "none"


@dataclass
class TeacherOutputsConfig:
    """The teacher_outputs stage (params.yaml bort.teacher_outputs; the streams and temperatures come from the
    consumers' sections: bort.fptas and bort.pretrain)."""
    top_k: int = field(metadata={"help": "logits kept per masked position (the rest is one tail bucket)"})
    streams: list[list] = field(
        metadata={"help": 'JSON list of [batch_size, steps] (plain blocks) or [batch_size, steps, "sop"|"nsp"] '
                          '(sentence pairs): the training streams the consumers read'})
    temperatures: list[float] = field(metadata={"help": "JSON list of the temperatures the consumers distill at"})
    mask_probability: float = field(metadata={"help": "share of the tokens masked"})
    heldout_batch_size: int = field(metadata={"help": "sequences per teacher forward pass on the held-out split"})
    seed: int = field(metadata={"help": "the training stream's and the held-out masking's seed"})


@torch.no_grad()
def top_k_outputs(logits: torch.Tensor, top_k: int, temperatures: list[float]) -> dict[str, torch.Tensor]:
    """What is stored of T's logits (M, V) at M masked positions: top-k ids and logits, and per temperature the
    log-sum-exp of all logits / tau and of the tail / tau ((M, T) each; the tail's is -inf when k = V)."""
    logits = logits.float()
    k = min(top_k, logits.shape[-1])
    top_logits, top_ids = logits.topk(k, dim=-1)  # (M, k)
    all_lse, tail_lse = [], []
    for temperature in temperatures:
        scaled = logits / temperature
        all_lse.append(torch.logsumexp(scaled, dim=-1))
        tail_lse.append(torch.logsumexp(scaled.scatter(1, top_ids, float("-inf")), dim=-1))
    return {"ids": top_ids.to(torch.int32), "logits": top_logits, "logsumexp": torch.stack(all_lse, dim=1),
            "tail_logsumexp": torch.stack(tail_lse, dim=1)}


def _concatenate(parts: list[dict[str, torch.Tensor]], targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**{name: torch.cat([part[name] for part in parts]) for name in parts[0]},
            "targets": torch.cat(targets).to(torch.int32)}


@torch.no_grad()
def _outputs_of_batches(teacher, batches: Iterable[dict], count: int, config: TeacherOutputsConfig, device: str,
                        logger, label: str) -> dict[str, torch.Tensor]:
    """T's stored outputs over `count` batches, with each batch's per-row masked counts (to slice DDP ranks)."""
    parts, targets, row_counts = [], [], []
    started = time.perf_counter()
    for index, batch in zip(range(count), batches):
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        selected = batch["labels"] != -100  # (B, L)
        parts.append({name: tensor.cpu() for name, tensor in
                      top_k_outputs(masked_logits(teacher, batch), config.top_k, config.temperatures).items()})
        targets.append(batch["labels"][selected].cpu())
        row_counts.append(selected.sum(dim=1).cpu())
        if (index + 1) % 100 == 0:
            logger.info("%s: %d/%d batches (%.1f s)", label, index + 1, count, time.perf_counter() - started)
    outputs = _concatenate(parts, targets)
    counts = torch.stack(row_counts) if len({len(c) for c in row_counts}) == 1 else None
    if counts is not None:
        outputs["row_counts"] = counts.to(torch.int32)  # (batches, B): equal batch sizes (training streams)
    return outputs


def compute_teacher_outputs(teacher, train_blocks, heldout_blocks, tokenizer, config: TeacherOutputsConfig,
                            device: str, logger) -> dict[str, dict[str, torch.Tensor]]:
    """{file name: tensors}: one file per training stream, and the held-out split's."""
    teacher.to(device).eval()
    files = {}
    for batch_size, steps, pairs in map(stream_key, config.streams):
        stream = training_batches(train_blocks, tokenizer, config.mask_probability, batch_size, config.seed,
                                  sentence_objective=pairs)
        label = f"stream of batch {batch_size}" + ("" if pairs == "none" else f" ({pairs} pairs)")
        files[stream_file(batch_size, pairs)] = _outputs_of_batches(teacher, stream, steps, config, device, logger,
                                                                    label)
    heldout = heldout_masked_batches(heldout_blocks, tokenizer, config.mask_probability, config.heldout_batch_size,
                                     config.seed)
    outputs = _outputs_of_batches(teacher, heldout, len(heldout), config, device, logger, "held-out")
    outputs.pop("row_counts", None)  # held-out batches are re-cut by position counts, whatever their size
    files[HELDOUT_FILE] = outputs
    return files


def tail_mass(outputs: dict[str, torch.Tensor], temperatures: list[float]) -> dict[str, float]:
    """Mean teacher probability outside the top k, per temperature: how much the tail bucket carries."""
    mass = (outputs["tail_logsumexp"] - outputs["logsumexp"]).exp().mean(dim=0)
    return {f"{temperature:g}": round(float(value), 6) for temperature, value in zip(temperatures, mass)}


def save_teacher_outputs(folder: str, files: dict[str, dict[str, torch.Tensor]], info: dict) -> None:
    from safetensors.torch import save_file

    with atomic_output_dir(folder) as staging:
        for name, tensors in files.items():
            save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, os.path.join(staging, name))
        write_json(os.path.join(staging, INFO_FILE), info)


class TeacherOutputs:
    """The teacher_outputs stage's folder, read by candidates and KD pretraining."""

    def __init__(self, folder: str):
        self.folder = folder
        verify_checksums(folder)  # a corrupt file raises here, naming it
        self.info = read_json(os.path.join(folder, INFO_FILE))
        self.temperatures = self.info["temperatures"]

    @classmethod
    def load(cls, folder: str) -> "TeacherOutputs":
        if not os.path.exists(os.path.join(folder, INFO_FILE)):
            raise FileNotFoundError(f"{folder} has no {INFO_FILE}: not a folder written by the teacher_outputs stage")
        return cls(folder)

    def _temperature_column(self, temperature: float) -> int:
        for column, cached in enumerate(self.temperatures):
            if math.isclose(cached, temperature):
                return column
        raise ValueError(f"{self.folder} holds T's outputs at temperatures {self.temperatures}, not {temperature}: "
                         f"rerun the teacher_outputs stage (its temperatures come from bort.pretrain.temperature)")

    def _read(self, name: str) -> dict[str, torch.Tensor]:
        return load_safetensors(os.path.join(self.folder, name))

    def _check_stream(self, batch_size: int, seed: int, mask_probability: float, steps: int,
                      sentence_objective: str = "none") -> None:
        name = f"batch {batch_size}" + ("" if sentence_objective == "none" else f" ({sentence_objective} pairs)")
        for stream in self.info["streams"]:
            if (stream["batch_size"], stream.get("sentence_objective", "none")) == (batch_size, sentence_objective):
                if (stream["seed"], stream["mask_probability"]) != (seed, mask_probability):
                    raise ValueError(f"{self.folder}: the cached stream of {name} was masked with seed "
                                     f"{stream['seed']} and probability {stream['mask_probability']}, this run uses "
                                     f"{seed} and {mask_probability}")
                if stream["steps"] < steps:
                    raise ValueError(f"{self.folder}: the cached stream of {name} covers "
                                     f"{stream['steps']} steps, this run needs {steps}")
                return
        cached = sorted(f"{stream['batch_size']}" + (f" ({stream['sentence_objective']} pairs)"
                                                     if "sentence_objective" in stream else "")
                        for stream in self.info["streams"])
        raise ValueError(f"{self.folder} has no cached stream of {name} (it has {cached}); the teacher_outputs stage "
                         f"writes one per batch size in bort.fptas and bort.pretrain, and one per sentence objective "
                         f"of a KD run")

    def attach(self, batches: Iterator[dict], *, batch_size: int, seed: int, mask_probability: float, steps: int,
               temperature: float, start_step: int = 0, rank: int = 0, world_size: int = 1,
               sentence_objective: str = "none") -> Iterator[dict]:
        """The training batches of steps start_step, start_step + 1, ... with T's outputs added (BATCH_KEYS), for
        this rank's rows; each batch's targets are checked against the cached ones. sentence_objective: the
        stream of sentence pairs (sop, nsp) rather than plain blocks."""
        self._check_stream(batch_size, seed, mask_probability, steps, sentence_objective)
        return self._attach(batches, self._read(stream_file(batch_size, sentence_objective)),
                            self._temperature_column(temperature), start_step, rank, world_size)

    def _attach(self, batches, tensors, column, start_step, rank, world_size) -> Iterator[dict]:
        row_counts = tensors["row_counts"].long()  # (steps, B)
        step_starts = torch.cat([torch.zeros(1, dtype=torch.long), row_counts.sum(dim=1).cumsum(0)])
        shard = row_counts.shape[1] // world_size
        for step, batch in enumerate(batches, start=start_step):
            if step >= len(row_counts):
                raise ValueError(f"{self.folder}: step {step + 1} is past the {len(row_counts)} cached steps")
            before_rank = int(row_counts[step, :rank * shard].sum())
            start = int(step_starts[step]) + before_rank
            end = start + int(row_counts[step, rank * shard:(rank + 1) * shard].sum())
            yield {**batch, **self._positions(tensors, start, end, column, batch, f"training step {step + 1}")}

    def _positions(self, tensors, start: int, end: int, column: int, batch: dict, where: str) -> dict:
        targets = batch["labels"][batch["labels"] != -100]
        if not torch.equal(targets, tensors["targets"][start:end].long()):
            raise ValueError(f"{self.folder}: {where}'s masked tokens differ from the cached ones: the batches do not "
                             f"come from the stream the teacher_outputs stage saw (corpus, tokenizer or masking "
                             f"changed); rerun it")
        return {"teacher_ids": tensors["ids"][start:end].long(), "teacher_logits": tensors["logits"][start:end],
                "teacher_logsumexp": tensors["logsumexp"][start:end, column],
                "teacher_tail_logsumexp": tensors["tail_logsumexp"][start:end, column]}

    def heldout(self, batches: list[dict], temperature: float) -> list[TeacherTopK]:
        """T's outputs for each held-out batch (any batch size: positions are counted off in order)."""
        tensors, column = self._read(HELDOUT_FILE), self._temperature_column(temperature)
        outputs, start = [], 0
        for index, batch in enumerate(batches):
            end = start + int((batch["labels"] != -100).sum())
            outputs.append(teacher_top_k(self._positions(tensors, start, end, column, batch,
                                                         f"held-out batch {index}"), temperature))
            start = end
        if start != len(tensors["targets"]):
            raise ValueError(f"{self.folder}: the held-out split has {len(tensors['targets'])} cached positions, the "
                             f"batches {start}; rerun the teacher_outputs stage")
        return outputs


def teacher_top_k(batch: dict, temperature: float) -> TeacherTopK:
    """The TeacherTopK of a batch that went through TeacherOutputs.attach at `temperature`."""
    return TeacherTopK(batch["teacher_ids"], batch["teacher_logits"], batch["teacher_logsumexp"],
                       batch["teacher_tail_logsumexp"], temperature)


def stream_info(config: TeacherOutputsConfig, files: dict[str, dict[str, torch.Tensor]]) -> list[dict]:
    """teacher_outputs.json's record of each stream; a pair stream also names its sentence objective."""
    return [{"batch_size": batch_size, "steps": steps, "seed": config.seed,
             "mask_probability": config.mask_probability, "file": stream_file(batch_size, pairs),
             "positions": len(files[stream_file(batch_size, pairs)]["targets"]),
             **({} if pairs == "none" else {"sentence_objective": pairs})}
            for batch_size, steps, pairs in map(stream_key, config.streams)]
