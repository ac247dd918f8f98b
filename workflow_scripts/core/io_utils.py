"""Small I/O helpers: atomic outputs (a killed stage leaves nothing a rerun would trust), JSON, logging."""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import sys
import tempfile

STAGING_INFIX = ".partial-"


def remove_stale_staging(final_path: str) -> None:
    """Remove the staging folders of final_path that a killed writer left behind. Under Snakemake one job at a
    time writes an output, so any that exist when a new write starts are leftovers."""
    parent, name = os.path.split(os.path.abspath(final_path))
    for leftover in glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}{STAGING_INFIX}*")):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(final_path: str):
    """Yield a staging folder next to final_path; on success it replaces final_path in one rename.

    On any error the staging folder is removed and final_path is left as it was.
    """
    parent = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_staging(final_path)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final_path)}{STAGING_INFIX}", dir=parent)
    try:
        yield staging
        if os.path.isdir(final_path):
            # Two renames keep the window without a valid final_path as short as possible.
            retired = staging + ".old"
            os.rename(final_path, retired)
            os.rename(staging, final_path)
            shutil.rmtree(retired)
        else:
            os.rename(staging, final_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_text(path: str, text: str) -> None:
    """Write a file through a temporary file and a rename: readers see the old content or the new, never half."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str, content: bytes) -> None:
    """As write_text, for bytes (figures)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.partial-", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_json(path: str, content) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def setup_logging(log_file: str | None) -> logging.Logger:
    """Log to stderr and, when given, to the stage's log file (logs/<rule>/...); uncaught errors go to both."""
    logger = logging.getLogger("workflow_scripts")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)

    def log_uncaught(exc_type, exc_value, exc_traceback):
        logger.error("stage failed", exc_info=(exc_type, exc_value, exc_traceback))

    sys.excepthook = log_uncaught
    return logger
