"""Record finished stages in dvc.lock in one pass: `python -m workflow_scripts.pipeline.dvc_commit STAGE...`.

What `dvc commit --force STAGE...` does, without its cost at scale: the CLI parses dvc.yaml and rewrites dvc.lock
once per named stage (about 18 s each with the full comparison's 400 stages), while this collects the stages
once, saves and commits each (hashes, cache links), and writes dvc.lock once.

Hashing the outputs is the cheap part. DVC parses params.yaml again for every stage that reads a parameter (its
YAML parser is pure Python), and dvc.yaml and dvc.lock more than once: each text is parsed once here.
"""
from __future__ import annotations

import copy
import sys
from contextlib import contextmanager
from pathlib import Path


def commit_stages(names: list[str]) -> int:
    """Commit the named stages of the DVC repository in the working directory (DVC resolves a stage's paths from
    there); returns how many were committed."""
    from dvc.repo import Repo

    wanted = set(names)
    with parse_each_yaml_text_once(), Repo() as repo, repo.lock:
        stages = [stage for stage in repo.index.stages if getattr(stage, "name", None) in wanted]
        for stage in stages:
            stage.save()
            stage.commit(relink=True)
        write_lock_entries(stages)
    return len(stages)


def write_lock_entries(stages) -> None:
    """Write the stages' dvc.lock entries, as `dvc commit` does, beside the file's other entries. DVC re-reads the
    lock file for this with its round-trip parser (keeping comments and layout, of which a generated file has none):
    the slowest parse there is (9 s for make run's 2 MB lock). The plain parse already made is reused instead; the
    dumper is DVC's own."""
    from dvc.stage import serialize
    from dvc.utils.serialize import dump_yaml, load_yaml

    by_lockfile = {}
    for stage in stages:
        by_lockfile.setdefault(stage.dvcfile._lockfile.path, []).append(stage)
    for path, file_stages in by_lockfile.items():
        data = load_yaml(path) if Path(path).exists() else {}
        data = {"schema": "2.0", **data}
        entries = data.setdefault("stages", {})
        for stage in file_stages:
            entries.update(serialize.to_lockfile(stage))
        dump_yaml(path, data)


@contextmanager
def parse_each_yaml_text_once():
    """Within the block, DVC's plain YAML parses are memoized by the file's text (a file that changed is parsed
    again); each caller gets its own copy. Round-trip parses (for rewriting a file) are left alone."""
    from dvc.utils import strictyaml
    from dvc.utils.serialize import _yaml

    original = _yaml.parse_yaml
    parsed = {}

    def parse_once(text, path, typ="safe"):
        if typ != "safe":
            return original(text, path, typ)
        if text not in parsed:
            parsed[text] = original(text, path, typ)
        return copy.deepcopy(parsed[text])

    _yaml.parse_yaml = strictyaml.parse_yaml = parse_once
    try:
        yield
    finally:
        _yaml.parse_yaml = strictyaml.parse_yaml = original


def main(argv=None) -> None:
    names = sys.argv[1:] if argv is None else argv
    committed = commit_stages(names)
    if committed != len(set(names)):
        sys.exit(f"dvc.yaml has {committed} of the {len(set(names))} stages named")


if __name__ == "__main__":
    main()
