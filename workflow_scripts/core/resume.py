"""Resumable stages: numbered checkpoints beside the output, trusted only while what they were computed from is
unchanged.

    checkpoints = Checkpoints(output, fingerprint(inputs={"corpus": corpus_folder}, code_module=
                              "workflow_scripts.stages.kd_pretrain", hyperparameters=[config]), ".checkpoints", "step_")
    latest = checkpoints.latest()             # (index, folder) of the newest complete checkpoint, or None
    with checkpoints.write(step) as folder:   # fill folder; it appears under its final name only when complete
        ...

The folder is `<output>.checkpoints` (or `.rounds`), beside the output and not inside it: Snakemake deletes a
job's outputs before it reruns the job. A checkpoint is written into a hidden staging folder, then renamed: a
folder under its final name is always complete, and its checkpoint.json records the fingerprint of the run that
wrote it. The fingerprint covers
- the inputs: size and modification time of every file under each input folder (or of each input file),
- the code: the content of the stage module and of every package module it imports, transitively
  (`pipeline.dag.code_files`, the files a rule lists as the stage's code inputs),
- the hyperparameters: the stage's config dataclasses (execution settings such as threads, device and the log
  file are not passed in: they never change what is computed).
Checkpoints of another fingerprint are removed (the run starts over), and so are staging folders a killed write
left behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from workflow_scripts.core.io_utils import read_json, write_checksums, write_json
from workflow_scripts.pipeline.dag import code_files

logger = logging.getLogger("workflow_scripts")
MARKER = "checkpoint.json"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding workflow_scripts/


def input_signature(inputs: dict[str, str]) -> dict[str, list]:
    """{name: [[path relative to the input, size, mtime_ns], ...]} over every file under each input (a missing
    input counts as no files)."""
    signature = {}
    for name, path in sorted(inputs.items()):
        if os.path.isfile(path):
            files = [(".", path)]
        else:
            files = sorted((os.path.relpath(os.path.join(folder, file), path), os.path.join(folder, file))
                           for folder, _, names in os.walk(path) for file in names)
        signature[name] = [[relative, os.stat(full).st_size, os.stat(full).st_mtime_ns] for relative, full in files]
    return signature


def code_signature(module: str, root: Path | None = None) -> str:
    """SHA-256 of the names and contents of the stage module's code files."""
    root = root or PACKAGE_ROOT
    digest = hashlib.sha256()
    for relative in code_files(module, str(root)):
        digest.update(relative.encode() + b"\0" + (root / relative).read_bytes() + b"\0")
    return digest.hexdigest()


def hyperparameter_signature(hyperparameters: list) -> dict:
    """{class name: fields} of dataclass instances; plain mappings under their position."""
    signature = {}
    for position, config in enumerate(hyperparameters):
        if dataclasses.is_dataclass(config):
            signature[type(config).__name__] = dataclasses.asdict(config)
        else:
            signature[str(position)] = dict(config)
    return signature


def fingerprint(*, inputs: dict[str, str], code_module: str, hyperparameters: list) -> str:
    """What a checkpoint must share with this run to be resumed (see the module docstring)."""
    content = {"inputs": input_signature(inputs), "code": code_signature(code_module),
               "hyperparameters": hyperparameter_signature(hyperparameters)}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpoints:
    """The numbered checkpoint folders of one output: <output><suffix>/<prefix><index, zero-padded>."""

    def __init__(self, output: str, run_fingerprint: str, suffix: str = ".checkpoints", prefix: str = "step_",
                 digits: int = 7):
        self.root = output.rstrip("/") + suffix
        self.fingerprint, self.prefix, self.digits = run_fingerprint, prefix, digits

    def folder(self, index: int) -> str:
        return os.path.join(self.root, f"{self.prefix}{index:0{self.digits}d}")

    def complete(self) -> list[tuple[int, str]]:
        """(index, folder) of every complete checkpoint of this run, in order. When any is from another
        fingerprint, all are removed (the run starts over); half-written staging folders are removed."""
        if not os.path.isdir(self.root):
            return []
        found = []
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if name.startswith("."):  # a staging folder a killed write left behind
                shutil.rmtree(path, ignore_errors=True)
                continue
            index = name.removeprefix(self.prefix)
            if not (name.startswith(self.prefix) and index.isdigit()):
                continue
            marker = os.path.join(path, MARKER)
            if not os.path.isfile(marker) or read_json(marker).get("fingerprint") != self.fingerprint:
                logger.warning("checkpoints in %s are from other inputs, code or hyperparameters: starting over",
                               self.root)
                shutil.rmtree(self.root)
                return []
            found.append((int(index), path))
        return found

    def latest(self) -> tuple[int, str] | None:
        """(index, folder) of the newest complete checkpoint of this run, or None."""
        found = self.complete()
        return found[-1] if found else None

    def consecutive(self) -> list[tuple[int, str]]:
        """The complete checkpoints 0, 1, 2, ... up to the first missing index; later ones are removed (a run
        that resumes from round k needs every round before it)."""
        found = self.complete()
        kept = [(index, path) for position, (index, path) in enumerate(found) if index == position]
        for _, path in found[len(kept):]:
            shutil.rmtree(path)
        return kept

    @contextlib.contextmanager
    def write(self, index: int):
        """Yield a staging folder to fill; on success it becomes checkpoint `index` in one rename."""
        os.makedirs(self.root, exist_ok=True)
        final = self.folder(index)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.partial-", dir=self.root)
        try:
            yield staging
            write_json(os.path.join(staging, MARKER), {"fingerprint": self.fingerprint, "index": index})
            write_checksums(staging)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def keep_newest(self, count: int) -> None:
        """Remove all but the newest `count` checkpoints (0 keeps all)."""
        if count:
            for _, path in self.complete()[:-count]:
                shutil.rmtree(path)

    def move_into(self, folder: str, name: str) -> None:
        """Move the checkpoint folder to folder/name (an output that keeps its checkpoints)."""
        if os.path.isdir(self.root):
            shutil.move(self.root, os.path.join(folder, name))
