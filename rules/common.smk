# Shared by every rule: params.yaml loading and validation, wildcard constraints, helpers, the DVC adoption hook.
import os
import sys

from snakemake.exceptions import WorkflowError

from workflow_scripts.pipeline.params import (COMPETITOR_ALGORITHMS, ParamsError, check_per_layer, custom_task_inputs,
                                             method_algorithm, method_layer_order, rule_hparams, validate_params)
from workflow_scripts.pipeline.dag import adopt_into_dvc, code_files, task_code_files
from workflow_scripts.head_pruning.order import processing_order
from workflow_scripts.core.models import encoder_depth
from workflow_scripts.pipeline.locks import clear_stale_locks
from workflow_scripts.pipeline.parent_watch import mark_snakemake_process
from workflow_scripts.pipeline.warm_start import python_command

configfile: "params.yaml"

try:
    validate_params(config)
    # The per-layer chains have one job per encoder layer: the depth is read from the model's config.
    NUM_LAYERS = encoder_depth(config["model"])
    check_per_layer(config, NUM_LAYERS)
except (ParamsError, RuntimeError) as error:
    # One message naming the key, before any job is scheduled.
    raise WorkflowError(str(error)) from None

# After a hard kill: the lock the killed run left is removed when no Snakemake process works here any more (a live
# run's is kept), before Snakemake locks; the profile profiles/default rebuilds the outputs it left incomplete. Jobs
# on a cluster node run snakemake too, without a lock of their own: only the main process looks.
if workflow.is_main_process:
    lock_report = clear_stale_locks(os.getcwd())
    if lock_report:
        print(f"Locks: {lock_report}", file=sys.stderr)
# The jobs this process starts stop if it is killed (pipeline/parent_watch.py), instead of running on as orphans.
mark_snakemake_process()

TASKS = config["tasks"]
HEAD_PRUNING_METHODS = config["head_pruning"]["methods"]
HEAD_PRUNING_TASKS = config["head_pruning"]["tasks"]
HEAD_PRUNING_FIRST_SEED_TASKS = config["head_pruning"]["first_seed_tasks"]
HEAD_PRUNING_SEEDS = config["head_pruning"]["seeds"]
# Layers in the order each head-pruning method processes them (bottom_up: 0, 1, ...; top_down: the reverse).
LAYER_ORDER = {method: processing_order(NUM_LAYERS, method_layer_order(config, method))
               for method in HEAD_PRUNING_METHODS}
# The checkpoint each single-run method ends with; `evaluate` scores it. Method families add their entry here.
FINAL_STAGE_OF_METHOD = {"base": "finetune_initial"}
# Agora and its baseline run once per seed (models/{task}/{method}/seed_{seed}/<stage>); evaluate_agora scores them.
FINAL_STAGE_OF_AGORA_METHOD = {"agora": "agora_finetune", "bort_plain": "finetune_plain"}
# The interpreter running Snakemake (the project's venv) runs the stage CLIs too; with WORKFLOW_WARM_START=1 (make
# run) through the warm-start launcher, which forks each job from a process that has torch and transformers imported
# (pipeline/warm_start.py). Snakemake's code trigger compares the rules' command templates, so switching it reruns
# nothing.
PYTHON = python_command(sys.executable)


wildcard_constraints:
    task="|".join(TASKS),
    method="|".join([*FINAL_STAGE_OF_METHOD, *FINAL_STAGE_OF_AGORA_METHOD, *HEAD_PRUNING_METHODS]),
    layer=r"\d+",
    seed=r"\d+",


def all_cores(wildcards):
    """`threads:` of a job that takes the whole machine (--cores). A function, read when jobs are built and not when
    the Snakefile is parsed: commands without --cores (`snakemake --unlock`) parse."""
    return workflow.cores


def share_of_cores(parts):
    """`threads:` of jobs that run `parts` at a time side by side, sharing --cores."""
    return lambda wildcards: max(1, workflow.cores // parts)


# `priority:` of the jobs on the longest chain of `main`: Bort's serial chain (teacher -> its outputs -> candidates -> pretraining -> Agora -> its baseline, about 16 min
# on 2 cores). Started first, it runs beside the many short single-thread pruning jobs, which fill the other core to
# the end; left to the scheduler, it started halfway and ran alone at the end, one core idle (make run 2 min longer).
CRITICAL_PATH = 10
# Bort's teacher and its outputs take half the cores, not all, so that AUBER's chain starts beside them (at minute 2
# of make run instead of minute 9). The work hardly changes on these 2-core machines: alone, a second thread made
# a masked-LM step 1.6 times faster (40 steps of teacher_prep: 50 s on one thread, 31 s on two), and side by side two
# single-thread jobs slow each other as much (teacher_prep 270 s beside AUBER against 153 s alone on two threads).
# The unpruned fine-tune (and the task data it reads) comes first of all: every pruning chain waits for it (make run
# 3 min longer when it ran after Bort's candidates). Snakemake starts the set of ready jobs with the largest sum of
# priorities that fits the free cores: this one outranks any two others.
BEFORE_CRITICAL_PATH = 2 * CRITICAL_PATH + 1
# Then the other long serial chains: head pruning layer by layer (AUBER's is about 13 min of one core) and the
# architecture search with its two distillation stages (about 4 min), ahead of the short jobs that fill the gaps;
# left to the scheduler, the chains started 15 min into make run and ended it 3 min late. The unstructured-pruning
# chains too: left last, magnitude pruning's 75-s fine-tune ran alone at the end of make run, and the reports that
# wait for it (the DAP report, the table of every model) after it.
LONG_CHAIN = 5


def chain_priority(wildcards):
    """AUBER's chains (and its ablations') ahead of the competitors': the agent's search makes each of its layers
    minutes long where a competitor's takes seconds, so it is the chain that would end the run late."""
    return LONG_CHAIN + 1 if wildcards.method.split("_")[0] == "auber" else LONG_CHAIN


def final_checkpoint(wildcards):
    return f"models/{wildcards.task}/{wildcards.method}/{FINAL_STAGE_OF_METHOD[wildcards.method]}"


def hparams(rule):
    """A rule's `params: hp=`: the stage's flags read from params.yaml (pipeline/params.py: RULE_HPARAMS)."""
    return lambda wildcards: rule_hparams(config, rule, wildcards)


def task_data(wildcards):
    """The local file or folder a task of your own reads (Snakemake reruns its preparation when it changes, DVC
    tracks it); nothing for the built-in tasks."""
    return custom_task_inputs(config, wildcards.task)


def code(module):
    """Inputs that make a stage rerun when its code (the CLI and the library modules it imports) changes."""
    return code_files(f"workflow_scripts.stages.{module}")


def task_code(module):
    """A per-task stage's code inputs: only the task source's modules (a GLUE task does not read the generated
    tasks' grammar, so editing it reruns nothing of a GLUE task)."""
    return lambda wildcards: task_code_files(f"workflow_scripts.stages.{module}", wildcards.task)


onsuccess:
    adopt_into_dvc(workflow.dag.jobs)
