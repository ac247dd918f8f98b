# Shared by every rule: params.yaml loading and validation, wildcard constraints, helpers, the DVC adoption hook.
import os
import sys

from snakemake.exceptions import WorkflowError

from workflow_scripts.config import ParamsError, hparams_from_keys, stage_hparams, validate_params
from workflow_scripts.dag import adopt_into_dvc, code_files

configfile: "params.yaml"

try:
    validate_params(config)
except ParamsError as error:
    # One message naming the key, before any job is scheduled.
    raise WorkflowError(str(error)) from None

TASKS = config["tasks"]
# The checkpoint each method ends with; `evaluate` scores it. Method families add their entry here.
FINAL_STAGE_OF_METHOD = {"base": "finetune_initial"}
# The interpreter running Snakemake (the project's venv) runs the stage CLIs too.
PYTHON = sys.executable


wildcard_constraints:
    task="|".join(TASKS),
    method="|".join(FINAL_STAGE_OF_METHOD),


def final_checkpoint(wildcards):
    return f"models/{wildcards.task}/{wildcards.method}/{FINAL_STAGE_OF_METHOD[wildcards.method]}"


def code(module):
    """Inputs that make a stage rerun when its code (the CLI and the library modules it imports) changes."""
    return code_files(f"workflow_scripts.{module}")


onsuccess:
    adopt_into_dvc(workflow.dag.jobs)
