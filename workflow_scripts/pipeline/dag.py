"""One stage graph, two front ends: dvc.yaml is derived from the Snakemake DAG, and Snakemake runs adopt their
results into dvc.lock.

Snakemake is the only executor. Each DVC stage is one Snakemake job: its command is
`snakemake --allowed-rules <rule> -- <outputs>` (the same shell command on the same paths, with Snakemake's own
bookkeeping), its deps are the job's inputs (data, checkpoints and the Python modules the stage imports), its
params are the dotted params.yaml keys the job's hyperparameters were read from, and its outs are the job's
outputs (`*metrics.json` files are declared as DVC metrics, `.csv` tables as DVC plots, `_heatmap.csv` with the confusion template). After a successful `snakemake` run, `dvc commit`
records the jobs it built, so `dvc repro` finds nothing to do; a `dvc repro` runs Snakemake itself, so Snakemake
finds nothing to do afterwards either.
"""
from __future__ import annotations

import ast
import os
import string
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "workflow_scripts"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
INVALID_STAGE_NAME_CHARS = set(string.punctuation) - {"_", "-"}  # DVC's rule for stage names
METRICS_SUFFIX = "metrics.json"  # metrics.json, layerwise_metrics.json: DVC metrics
PLOT_SUFFIX = ".csv"            # per-layer tables under results/: DVC plots
PLOT_AXES = {"x": "step", "y": "dev_score"}  # per-layer dev curves; other plots by their name's ending:
PLOT_AXES_BY_SUFFIX = {"_curve.csv": {"x": "step", "y": "mlm_accuracy"},  # Bort pretraining curves
                       "_scatter.csv": {"template": "scatter", "x": "parameters_millions", "y": "surrogate_error"},
                       "dev_per_round.csv": {"x": "round", "y": "dev_score"},  # Agora, round by round
                       "train_size_per_round.csv": {"x": "round", "y": "train_size"}}
TABLE_SUFFIX = "table.csv"      # result tables: plain (git-versioned) outputs, not plots
HEATMAP_SUFFIX = "_heatmap.csv"  # one row per pruned (layer, head): DVC's confusion template counts them
HEATMAP_AXES = {"template": "confusion", "x": "layer", "y": "head"}


def module_file(module: str) -> Path | None:
    """The source file of a package module (`workflow_scripts.core.training` -> core/training.py), or None."""
    parts = module.split(".")[1:]
    candidates = [PACKAGE_DIR.joinpath(*parts).with_suffix(".py"), PACKAGE_DIR.joinpath(*parts, "__init__.py")]
    return next((path for path in candidates if parts and path.is_file()), None)


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of an ImportFrom's module (`from .lexicon import` inside data.generated)."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".")[:-node.level]
    return ".".join([*package, *([node.module] if node.module else [])])


@lru_cache(maxsize=None)
def _imported_modules(module: str) -> frozenset[str]:
    """Package modules imported (directly, at any depth of the source) by one module of the package. `from
    workflow_scripts.core import training` counts the submodule; package __init__ files are empty."""
    found = set()
    for node in ast.walk(ast.parse(module_file(module).read_text())):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            if base == PACKAGE or base.startswith(PACKAGE + "."):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE + "."))
    return frozenset(name for name in found if name != module and module_file(name) is not None
                     and module_file(name).name != "__init__.py")


def code_files(module: str, root: str = ".", skip=lambda name: False) -> list[str]:
    """The files of a stage CLI module and every package module it imports, transitively, as paths relative to
    the workflow root: a rule lists them as inputs, so editing the code of a stage reruns exactly that stage.
    `skip(name)` leaves out a module (and what only it imports): code the job provably does not run."""
    seen, pending = set(), [module]
    while pending:
        current = pending.pop()
        if current not in seen and not skip(current):
            seen.add(current)
            pending.extend(_imported_modules(current))
    files = {module_file(name) for name in seen}
    if f"{PACKAGE}.pipeline.params" in seen:
        files.add(PACKAGE_DIR / "pipeline" / "params_schema.yaml")
    return sorted(os.path.relpath(path, root) for path in files)


GENERATED_TASKS_PACKAGE = f"{PACKAGE}.data.generated"
CUSTOM_TASKS_MODULE = f"{PACKAGE}.data.custom_tasks"


def task_code_files(module: str, task: str, root: str = ".") -> list[str]:
    """A per-task stage's code: a GLUE task never runs the generated tasks' grammar, a generated task runs only
    its own task's modules (data/generated: modules_for_kind), and only a task of your own (a name not built in)
    runs data/custom_tasks."""
    from workflow_scripts.data.tasks import TASKS

    spec = TASKS.get(task)
    needed = set()
    if spec is None:
        needed = {CUSTOM_TASKS_MODULE}
    elif spec.source == "generated":
        from workflow_scripts.data.generated.task_generator import modules_for_kind

        needed = set(modules_for_kind(spec.generator_kind))
    return code_files(module, root, skip=lambda name: name.startswith((GENERATED_TASKS_PACKAGE + ".",
                                                                       CUSTOM_TASKS_MODULE))
                      and name not in needed)


def dvc_stage_name(rule: str, wildcards: dict) -> str:
    """`finetune_initial-gen_mrpc`: the rule, then the wildcard values in order, in DVC's allowed characters."""
    parts = [rule, *(str(value) for value in wildcards.values())]
    return "-".join("".join("_" if c in INVALID_STAGE_NAME_CHARS else c for c in part) for part in parts)


def dvc_stage_command(rule: str, outputs: list[str]) -> str:
    return f"snakemake --cores all --allowed-rules {rule} -- {' '.join(outputs)}"


def plot_axes(path: str) -> dict:
    if path.endswith(HEATMAP_SUFFIX):
        return HEATMAP_AXES
    return next((axes for suffix, axes in PLOT_AXES_BY_SUFFIX.items() if path.endswith(suffix)), PLOT_AXES)


def stage_from_job(job) -> tuple[str, dict]:
    """(stage name, dvc.yaml stage) for one Snakemake job."""
    from snakemake.io import is_flagged

    outputs = [str(path) for path in job.output]
    hparams = [value for value in job.params if hasattr(value, "tracked_keys")]
    stage = {"cmd": dvc_stage_command(job.rule.name, outputs),
             "deps": sorted(str(path) for path in job.input)}
    params = sorted({key for value in hparams for key in value.tracked_keys})
    if params:
        stage["params"] = params
    # Checkpoints (directory outputs) go to DVC's cache. The small single files (metrics, plots, reports) are
    # `cache: false` and versioned by git, which is what `dvc metrics diff` / `dvc plots diff` read across commits
    # and experiments. Cached single files would break the two front ends' agreement: when a rerun writes
    # identical bytes, DVC hardlinks the old cache object back, with its old mtime, and Snakemake then sees the
    # output as older than its inputs (directories are safe: Snakemake judges them by .snakemake_timestamp).
    uncached = {path for path in job.output if not is_flagged(path, "directory")}
    metrics = [str(path) for path in job.output if str(path).endswith(METRICS_SUFFIX)]
    plots = [str(path) for path in job.output if str(path).endswith(PLOT_SUFFIX) and not str(path).endswith(TABLE_SUFFIX)]
    outs = [path for path in outputs if path not in metrics and path not in plots]
    cache = {str(path): {"cache": False} for path in uncached}
    if outs:
        stage["outs"] = [{path: cache[path]} if path in cache else path for path in outs]
    if metrics:
        stage["metrics"] = [{path: {"cache": False}} for path in metrics]
    if plots:
        stage["plots"] = [{path: {"cache": False, **plot_axes(path)}} for path in plots]
    return dvc_stage_name(job.rule.name, dict(job.wildcards_dict)), stage


def read_snakemake_jobs(snakefile: str = "Snakefile", workdir: str = ".", configfiles=()) -> list:
    """All jobs of the Snakemake DAG for the default target, in dependency order (no job is run)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                    config_settings=ConfigSettings(configfiles=[Path(f) for f in configfiles]),
                                    snakefile=Path(snakefile).absolute(), workdir=Path(workdir).absolute())
        dag_api = workflow_api.dag(dag_settings=DAGSettings(forceall=True))
        # Snakemake has no public "list the jobs" call; this is what its --dag printer does (pinned to 9.x).
        workflow = dag_api.workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        return toposorted_jobs(workflow.dag)


def toposorted_jobs(dag) -> list:
    """Jobs level by level (every job after its inputs' jobs), sorted within a level for a stable dvc.yaml."""
    ordered = []
    for level in dag.toposorted():
        ordered.extend(sorted(level, key=lambda job: (job.rule.name, [str(path) for path in job.output])))
    return ordered


def adopt_into_dvc(jobs, root: str = ".") -> None:
    """After a successful Snakemake run, record the jobs' results in dvc.lock (`dvc commit`), so that `dvc repro`
    has nothing to do. Skipped when DVC itself is running Snakemake, or outside a DVC repository."""
    if os.environ.get("DVC_STAGE") or not (Path(root, ".dvc").is_dir() and Path(root, "dvc.yaml").is_file()):
        return
    import yaml

    known = set(yaml.safe_load(Path(root, "dvc.yaml").read_text()).get("stages", {}))
    stages = [dvc_stage_name(job.rule.name, dict(job.wildcards_dict)) for job in jobs if job.output]
    missing = [name for name in stages if name not in known]
    if missing:
        print(f"dvc.yaml does not describe {len(missing)} of these jobs (e.g. {missing[0]}); "
              "run `make dvc.yaml` to regenerate it, then `dvc commit`.", file=sys.stderr)
    adoptable = [name for name in stages if name in known]
    if adoptable:
        # One pass over dvc.yaml for all stages (`dvc commit STAGE...` re-reads it per stage: minutes at scale)
        command = [sys.executable, "-m", f"{PACKAGE}.pipeline.dvc_commit", *adoptable]
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"could not record the results in dvc.lock: {result.stderr.strip()}", file=sys.stderr)
