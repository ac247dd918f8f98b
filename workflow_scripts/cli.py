"""What every stage CLI shares: execution flags (threads, device, log file) and their setup."""
from __future__ import annotations

import argparse
import json
import logging
import os

import torch

from .io_utils import setup_logging


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    execution = parser.add_argument_group("execution (how to run, not what to compute)")
    execution.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 0)) or None,
                           help="CPU threads for torch (results are bit-reproducible for a fixed thread count)")
    execution.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda[:N]'")
    execution.add_argument("--log-file", default=None, help="also write the log here (rules pass logs/<rule>/...)")
    return parser


def add_training_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (from params.yaml)")
    group.add_argument("--epochs", type=int, required=True, help="passes over the training set")
    group.add_argument("--learning-rate", type=float, required=True, help="peak AdamW learning rate")
    group.add_argument("--batch-size", type=int, required=True, help="examples per optimizer step")
    group.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (not biases/LayerNorm)")
    group.add_argument("--warmup-ratio", type=float, default=0.0, help="fraction of steps with linear warm-up")
    group.add_argument("--max-grad-norm", type=float, default=1.0, help="global gradient-norm clip")
    group.add_argument("--adam-epsilon", type=float, default=1e-8, help="AdamW epsilon")
    group.add_argument("--seed", type=int, default=0, help="seeds head init, shuffling and dropout")


def start_stage(args: argparse.Namespace) -> tuple[logging.Logger, str]:
    """Set up logging and threads; return (logger, device)."""
    logger = setup_logging(args.log_file)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    logger.info("arguments: %s", json.dumps(vars(args), sort_keys=True))
    logger.info("device %s, torch threads %d", device, torch.get_num_threads())
    return logger, device
