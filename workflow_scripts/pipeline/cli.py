"""Stage command lines derived from the library's config dataclasses.

A stage declares what it reads as dataclasses: its paths (inputs, outputs), the library configs it runs with
(TrainingConfig, DQNConfig, ...) and `Execution` (threads, device, log file). Every field becomes one flag
(`learning_rate` -> `--learning-rate`; a bool field is a
switch that also takes `true`/`false`). A field without a default is a required flag: hyperparameters have no
defaults in code, because params.yaml (typed and documented by its schema) is their one home and the rules pass
every one of them through `pipeline.params.rule_hparams`. Non-string values are read as JSON (`null`, `[512, 512]`,
`{"lr": 1e-3}`), which is how `StageHparams` renders them.

    paths, training, execution = parse_stage_args(__doc__, [FinetunePaths, TrainingConfig, Execution], argv)
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import functools
import json
import logging
import os
import resource
import types
import typing

import torch

from workflow_scripts.core.io_utils import setup_logging
from workflow_scripts.pipeline.parent_watch import watch_snakemake


@dataclasses.dataclass
class Execution:
    """How to run, not what to compute: these never change a result's meaning (threads fix its last bits)."""
    threads: int | None = dataclasses.field(
        default_factory=lambda: int(os.environ.get("OMP_NUM_THREADS", 0)) or None,
        metadata={"help": "CPU threads for torch (results are bit-reproducible for a fixed thread count)"})
    device: str = dataclasses.field(default="auto", metadata={"help": "'auto' (CUDA when present), 'cpu' or 'cuda[:N]'"})
    log_file: str | None = dataclasses.field(default=None, metadata={"help": "also write the log here"})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_parser(annotation):
    """str fields take the text as it is ('null' means None where None is allowed); others parse as JSON."""
    options = set(typing.get_args(annotation)) if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
        else {annotation}
    if str in options:
        return (lambda text: None if text == "null" else text) if type(None) in options else str

    def parse(text: str):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON value")
    return parse


def _is_path_list(annotation) -> bool:
    return typing.get_origin(annotation) is list and typing.get_args(annotation) == (str,)


def add_dataclass_args(parser: argparse.ArgumentParser, config_class) -> None:
    """One flag per field of `config_class`; nested dataclass fields are filled by their own class, not here."""
    group = parser.add_argument_group(config_class.__name__, (config_class.__doc__ or "").strip().split("\n")[0])
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if not field.init or dataclasses.is_dataclass(hints[field.name]) or field.metadata.get("cli") is False:
            continue
        options = {"dest": f"{config_class.__name__}.{field.name}", "help": field.metadata.get("help", ""),
                   "metavar": field.name.upper()}
        if _is_path_list(hints[field.name]):
            options["nargs"] = "*"
        elif hints[field.name] is bool:  # a switch: `--flag` alone means true; `--flag false` also parses
            options.update(nargs="?", const=True, type=_value_parser(bool))
        else:
            options["type"] = _value_parser(hints[field.name])
        if "choices" in field.metadata:
            options["choices"] = field.metadata["choices"]
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            options["required"] = True
        else:
            options["default"] = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        group.add_argument(_flag(field.name), **options)


def parse_stage_args(description: str, config_classes: list, argv=None,
                     check=None) -> list:
    """Instances of `config_classes` from the command line. A nested dataclass field (AuberConfig.dqn) is built
    from its own flags when its class is also listed. `check(instances)` may return an error message."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for config_class in config_classes:
        add_dataclass_args(parser, config_class)
    namespace = vars(parser.parse_args(argv))
    built: dict[type, object] = {}
    for config_class in reversed(config_classes):  # nested classes are listed after the classes holding them
        hints = typing.get_type_hints(config_class)
        values = {}
        for field in dataclasses.fields(config_class):
            if not field.init or field.metadata.get("cli") is False:
                continue
            if dataclasses.is_dataclass(hints[field.name]) and hints[field.name] in built:
                values[field.name] = built[hints[field.name]]
            elif f"{config_class.__name__}.{field.name}" in namespace:
                values[field.name] = namespace[f"{config_class.__name__}.{field.name}"]
        built[config_class] = config_class(**values)
    instances = [built[config_class] for config_class in config_classes]
    message = check(*instances) if check else None
    if message:
        parser.error(message)
    return instances


PEAK_MEMORY_MESSAGE = "peak resident memory %d MB"


def peak_memory_mb() -> int:
    """The kernel's high-water mark of this process's resident memory, and of its finished children (torchrun's
    workers), whichever is larger, in MB. Exact, where Snakemake's benchmark samples (every 30 s after the first)."""
    kilobytes = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(kilobytes / 1024)


@functools.cache
def log_peak_memory_at_exit(logger: logging.Logger) -> None:
    """Registers the exit hook once per process: tests call several stages' main() in one."""
    atexit.register(log_peak_memory, logger)


def log_peak_memory(logger: logging.Logger) -> None:
    """At exit (read by tools/memory_check). Streams already closed are skipped: where stages run inside another
    program (the tests), its stderr may be gone by then."""
    for handler in list(logger.handlers):
        if getattr(getattr(handler, "stream", None), "closed", False):
            logger.removeHandler(handler)
    logger.info(PEAK_MEMORY_MESSAGE, peak_memory_mb())


def start_stage(execution: Execution, *configs) -> tuple[logging.Logger, str]:
    """Set up logging and threads; log what the stage runs with; return (logger, device)."""
    logger = setup_logging(execution.log_file)
    log_peak_memory_at_exit(logger)
    watch_snakemake(logger)  # a job whose Snakemake was killed stops instead of running on as an orphan
    if execution.threads:
        torch.set_num_threads(execution.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if execution.device == "auto" else execution.device
    for config in configs:
        logger.info("%s: %s", type(config).__name__, json.dumps(dataclasses.asdict(config), sort_keys=True,
                                                               default=str))
    logger.info("device %s, torch threads %d", device, torch.get_num_threads())
    return logger, device

