"""Small I/O helpers: atomic outputs (a killed stage leaves nothing a rerun would trust), checksums (a file that was
truncated or altered after it was written is never read as if it were sound), JSON, logging.

Checksums. Every folder written through `atomic_output_dir` (checkpoints, tokenized data, the corpus, T's outputs)
gets `checksums.sha256`, the SHA-256 of each of its files in `sha256sum` format (`sha256sum -c checksums.sha256`
checks it by hand); readers call `verify_checksums` before they load. A JSON file named `*metrics.json` carries the
SHA-256 of its own content under the key "checksum" (`read_json` checks and removes it): a changed digit in a
metric still parses, so only a checksum tells it from the number that was written. A file that fails raises
`CorruptArtifactError` naming it. Folders and metrics written before checksums existed still load, with a warning;
their safetensors files are still checked for truncation (the header gives the file's length).
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile

logger = logging.getLogger("workflow_scripts")
CHECKSUM_FILE = "checksums.sha256"
JSON_CHECKSUM_KEY = "checksum"
CHECKSUMMED_JSON_SUFFIX = "metrics.json"
STAGING_INFIX = ".partial-"


class CorruptArtifactError(ValueError):
    """A file the pipeline wrote does not hold what was written (truncated, altered); the message names it."""

    def __init__(self, path, problem: str, rebuild: str | None = None):
        rebuild = rebuild or str(path)
        super().__init__(f"{path}: {problem}. The file is corrupt (truncated or altered since it was written): "
                         f"delete {rebuild} and rerun snakemake to rebuild it")
        self.path = str(path)


def remove_stale_staging(final_path: str) -> None:
    """Remove the staging folders of final_path that a killed writer left behind. Under Snakemake one job at a
    time writes an output, so any that exist when a new write starts are leftovers."""
    parent, name = os.path.split(os.path.abspath(final_path))
    for leftover in glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}{STAGING_INFIX}*")):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(final_path: str):
    """Yield a staging folder next to final_path; on success its checksums are written (CHECKSUM_FILE) and it
    replaces final_path in one rename.

    On any error the staging folder is removed and final_path is left as it was.
    """
    parent = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_staging(final_path)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final_path)}{STAGING_INFIX}", dir=parent)
    try:
        yield staging
        write_checksums(staging)
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


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksummed_files(folder: str) -> list[str]:
    """Paths (relative, sorted) of the files under folder that its CHECKSUM_FILE covers: all but hidden ones
    (staging folders, Snakemake's .snakemake_timestamp) and those of subfolders that carry their own."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith(".")
                            and not os.path.isfile(os.path.join(current, name, CHECKSUM_FILE)))
        for name in files:
            if not name.startswith(".") and not (current == folder and name == CHECKSUM_FILE):
                found.append(os.path.relpath(os.path.join(current, name), folder))
    return sorted(found)


def write_checksums(folder: str) -> None:
    """CHECKSUM_FILE in folder, in `sha256sum` format, over the files `_checksummed_files` lists."""
    write_text(os.path.join(folder, CHECKSUM_FILE),
               "".join(f"{file_sha256(os.path.join(folder, name))}  {name}\n" for name in _checksummed_files(folder)))


_verified: dict[str, tuple] = {}  # file -> (size, mtime, inode) when it last matched its checksum in this process
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def _file_state(path: str) -> tuple:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns, status.st_ino


def verify_checksums(folder) -> None:
    """Raise CorruptArtifactError naming the first file under folder that differs from its recorded SHA-256 (or is
    missing). A folder without CHECKSUM_FILE (written before checksums existed, or not by the pipeline) loads with
    a warning, its safetensors files checked for truncation."""
    folder = os.fspath(folder)
    sums_path = os.path.join(folder, CHECKSUM_FILE)
    if not os.path.isfile(sums_path):
        _warn_once(folder, f"{folder}: no {CHECKSUM_FILE} (written before checksums existed?): its files are not "
                           "checked for corruption")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith(".safetensors"):
                check_safetensors(os.path.join(folder, name))
        return
    with open(sums_path, "rb") as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines, 1):
        digest, _, name = line.decode("utf-8", errors="replace").partition("  ")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdef" for c in digest):
            raise CorruptArtifactError(sums_path, f"line {number} is not '<sha256>  <file>'", rebuild=folder)
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise CorruptArtifactError(path, f"missing, though {CHECKSUM_FILE} lists it", rebuild=folder)
        state = _file_state(path)
        if _verified.get(path) == state:
            continue
        if file_sha256(path) != digest:
            raise CorruptArtifactError(path, f"its SHA-256 differs from the one recorded in {CHECKSUM_FILE} when it "
                                             "was written", rebuild=folder)
        _verified[path] = state


def verified(folder):
    """folder, after `verify_checksums`: `from_pretrained(verified(folder))`."""
    verify_checksums(folder)
    return folder


def check_safetensors(path) -> None:
    """Raise CorruptArtifactError if a safetensors file's length is not the one its header describes (truncated, or
    a header that no longer parses). Reads the header only; a changed byte inside the tensors needs the checksum."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        header_size = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
        if header_size is None or 8 + header_size > size:
            raise CorruptArtifactError(path, f"{size} bytes, too short for the safetensors header it starts with")
        try:
            header = json.loads(handle.read(header_size))
            data_size = max([0, *(entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__")])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise CorruptArtifactError(path, f"its safetensors header does not parse ({error})") from None
    expected = 8 + header_size + data_size
    if size != expected:
        raise CorruptArtifactError(path, f"{size} bytes, but its safetensors header describes {expected}")


def load_safetensors(path) -> dict:
    """The tensors of a safetensors file; a file cut short or with a damaged header raises CorruptArtifactError
    naming it (`verify_checksums`, called before on its folder, catches a changed byte inside the tensors)."""
    from safetensors.torch import load_file

    check_safetensors(path)
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own SafetensorError for a damaged file
        raise CorruptArtifactError(path, f"safetensors cannot read it ({error})") from None


def _json_text(content) -> str:
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def _json_checksum(content) -> str:
    return "sha256:" + hashlib.sha256(_json_text(content).encode("utf-8")).hexdigest()


def write_json(path: str, content) -> None:
    """Write JSON (sorted keys, indented) atomically; a `*metrics.json` mapping with its checksum (module docstring)."""
    if str(path).endswith(CHECKSUMMED_JSON_SUFFIX) and isinstance(content, dict):
        body = {key: value for key, value in content.items() if key != JSON_CHECKSUM_KEY}
        content = {**body, JSON_CHECKSUM_KEY: _json_checksum(body)}
    write_text(path, _json_text(content))


def read_json(path: str):
    """The content of a JSON file; CorruptArtifactError naming it if it does not parse, or if a `*metrics.json`
    differs from its checksum (which is removed from the mapping returned)."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptArtifactError(path, f"not valid JSON ({error})") from None
    if str(path).endswith(CHECKSUMMED_JSON_SUFFIX) and isinstance(content, dict):
        recorded = content.pop(JSON_CHECKSUM_KEY, None)
        if recorded is None:
            _warn_once(str(path), f"{path}: no checksum (written before checksums existed?): not checked for "
                                  "corruption")
        elif recorded != _json_checksum(content):
            raise CorruptArtifactError(path, f"its content differs from its {JSON_CHECKSUM_KEY!r} (the SHA-256 "
                                             "recorded when it was written)")
    return content


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
        if issubclass(exc_type, CorruptArtifactError):  # one line that names the file is the whole story
            logger.error("stage failed: %s", exc_value)
            return
        logger.error("stage failed", exc_info=(exc_type, exc_value, exc_traceback))

    sys.excepthook = log_uncaught
    return logger
