# TinyBERT (seed 001): task distillation of a Bort student from each task's fine-tuned model, in TinyBERT's two
# stages (the rules and stage of rules/dap.smk, with the run's student, data and settings), then evaluated:
#   models/bort/init                                       <- bort_init (the chosen architecture, random init: "No GD")
#   models/{task}/{method}/distill_intermediate            <- tinybert_intermediate (skipped when the run asks)
#   models/{task}/{method}/distill_prediction              <- tinybert_prediction (T's logits, or the gold labels)
#   models/{task}/{method}/evaluate/metrics.json           <- evaluate_tinybert (dev, and test when labelled)
#   results/tinybert/{main,all}/report.{md,csv}            <- tinybert_report (the seed's Tables 5-7)
# {method} is `tinybert` (tinybert's settings) or a variant (tinybert.variants: tinybert_no_gd, ...). General
# distillation is Bort's pretraining objective `tinybert` (rules/bort.smk: models/bort/pretrain/tinybert).

from workflow_scripts.pipeline.params import tinybert_methods, tinybert_setting, tinybert_student

TINYBERT = config["tinybert"]
TINYBERT_TASKS = TINYBERT["tasks"]
TINYBERT_METHODS = tinybert_methods(config)


def tinybert_runs(scope):
    """(task, method) of each run: main, the first task's default run; all, every task x run (the variants:
    presets/tinybert-ablation.yaml)."""
    tasks, methods = (TINYBERT_TASKS[:1], TINYBERT_METHODS[:1]) if scope == "main" else (TINYBERT_TASKS,
                                                                                         TINYBERT_METHODS)
    return [(task, method) for task in tasks for method in methods]


def tinybert_reports(scope):
    return [f"results/tinybert/{scope}/report.md"] if TINYBERT_TASKS else []


def tinybert_start(wildcards):
    return tinybert_student(config, wildcards.method, wildcards.task)


def tinybert_data(wildcards):
    """The tokenized task, or its masked-LM augmentation (task_distillation.augmentation) when the run asks."""
    augmented = tinybert_setting(config, wildcards.method, "augmentation")
    return f"data/{wildcards.task}/augmented/tokenized" if augmented else f"data/{wildcards.task}/tokenized"


def tinybert_prediction_start(wildcards):
    """The intermediate stage's student, or the start itself when the run skips that stage ("No TD")."""
    if tinybert_setting(config, wildcards.method, "intermediate_stage"):
        return f"models/{wildcards.task}/{wildcards.method}/distill_intermediate"
    return tinybert_start(wildcards)


def tinybert_stages(scope):
    """The stage folders the report reads losses from (the intermediate one where the run has it)."""
    return [f"models/{task}/{method}/{stage}" for task, method in tinybert_runs(scope)
            for stage in ("distill_intermediate", "distill_prediction")
            if stage == "distill_prediction" or tinybert_setting(config, method, "intermediate_stage")]


# ---- bort_init: the architecture the FPTAS chose, at random initialization (what pretraining starts from) -------
rule bort_init:
    input:
        teacher=TEACHER,
        selection="results/bort/fptas/selection.json",
        code=code("bort_init"),
    output:
        directory("models/bort/init"),
    params:
        hp=hparams("bort_init"),
    log:
        "logs/bort_init/init.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.bort_init --teacher {input.teacher} --selection {input.selection} "
        "--output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- tinybert_intermediate: TinyBERT's first stage on the Bort student (embedding, hidden and attention MSEs) ---
use rule distill_intermediate as tinybert_intermediate with:
    input:
        student=tinybert_start,
        teacher="models/{task}/base/finetune_initial",
        data=tinybert_data,
        code=code("distill_task"),
    output:
        directory("models/{task}/{method}/distill_intermediate"),
    params:
        hp=hparams("tinybert_intermediate"),
    log:
        "logs/tinybert_intermediate/{task}-{method}.log",
    wildcard_constraints:
        task="|".join(TINYBERT_TASKS) or "$^",
        method="|".join(TINYBERT_METHODS),


# ---- tinybert_prediction: its second stage (soft cross-entropy to T's logits, or the gold labels' for ablations)
use rule distill_prediction as tinybert_prediction with:
    input:
        student=tinybert_prediction_start,
        teacher="models/{task}/base/finetune_initial",
        data=tinybert_data,
        code=code("distill_task"),
    output:
        directory("models/{task}/{method}/distill_prediction"),
    params:
        hp=hparams("tinybert_prediction"),
    log:
        "logs/tinybert_prediction/{task}-{method}.log",
    wildcard_constraints:
        task="|".join(TINYBERT_TASKS) or "$^",
        method="|".join(TINYBERT_METHODS),


# ---- evaluate_tinybert: dev (and test) metrics of the distilled student -> DVC metrics --------------------------
use rule evaluate as evaluate_tinybert with:
    input:
        model="models/{task}/{method}/distill_prediction",
        data="data/{task}/tokenized",
        code=code("evaluate"),
    log:
        "logs/evaluate/{task}-{method}.log",
    wildcard_constraints:
        task="|".join(TINYBERT_TASKS) or "$^",
        method="|".join(TINYBERT_METHODS),


# ---- tinybert_report: the seed's Tables 5-7 (dev and test), majority-class rates, each run's losses -------------
rule tinybert_report:
    input:
        metrics=lambda wildcards: [f"models/{task}/{method}/evaluate/metrics.json"
                                   for task, method in tinybert_runs(wildcards.scope)],
        stages=lambda wildcards: tinybert_stages(wildcards.scope),
        data=lambda wildcards: list(dict.fromkeys(f"data/{task}/tokenized" for task, _ in
                                                  tinybert_runs(wildcards.scope))),
        code=code("tinybert_report"),
    output:
        markdown="results/tinybert/{scope}/report.md",
        table="results/tinybert/{scope}/report.csv",
    params:
        hp=hparams("tinybert_report"),
    log:
        "logs/tinybert_report/{scope}.log",
    wildcard_constraints:
        scope="main|all",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.tinybert_report --metrics {input.metrics} --stages {input.stages} "
        "--data {input.data} --output-md {output.markdown} --output-csv {output.table} {params.hp} "
        "--threads {threads} --log-file {log}"
