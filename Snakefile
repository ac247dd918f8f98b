# BERT compression workflow. Parameters: params.yaml (validated before any work). Rules: rules/*.smk.
#   snakemake --cores all                       # the whole pipeline on the embedded default (every seed)
#   snakemake --cores all main                  # what `make run` builds: every method once (the first seed)
#   snakemake --cores all models/gen_mrpc/base/evaluate/metrics.json   # one target and what it needs
# dvc.yaml is generated from this DAG (`make dvc.yaml`); `dvc repro` runs the same jobs through Snakemake.

# `snakemake --report report.html`: the tables and figures of every method (captions in report/)
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/finetune.smk"
include: "rules/head_pruning.smk"
include: "rules/bort.smk"
include: "rules/agora.smk"
include: "rules/dap.smk"
include: "rules/tinybert.smk"
include: "rules/sparse.smk"

# Reports are cheap: on a cluster they run where Snakemake runs, not as jobs.
localrules: report_layers, compare_methods, compare_methods_first_seed, compare_methods_competitors_all_seeds,
    compare_methods_tasks_first_seed, fptas_select, bort_report, agora_compare, tinybert_report


def comparison_report(scope):
    return [f"results/comparison/{scope}/report.html"] if HEAD_PRUNING_TASKS else []


# Bort: the search's table and plot, and the distillation-versus-MLM comparison of the chosen architecture.
BORT_REPORTS = ["results/bort/fptas/table.md", "results/bort/pretrain/comparison.md"]
# Agora against the plain fine-tune of the same student over agora.seeds, and the rounds of each run (DVC plots).
AGORA_REPORTS = (["results/agora/comparison.md",
                  *agora_runs("results/agora/{task}/seed_{seed}/train_size_per_round.csv")] if AGORA_TASKS else [])
# `main` runs Agora and its baseline on the first seed (both are in results/models/first_seed/table.md); the
# comparison over every seed is in `all`: two more seeds cost about 5 of make run's 30 minutes.
AGORA_FIRST_SEED_REPORTS = agora_runs("results/agora/{task}/seed_{seed}/train_size_per_round.csv", AGORA_SEEDS[:1])
# `main` fine-tunes and evaluates the base model on the tasks its methods use (head_pruning.tasks, agora.tasks); the
# other tasks' base models (each about 1 min of make run's 30) are in `all`, with the comparison that uses them.
MAIN_TASKS = [task for task in TASKS if task in {*HEAD_PRUNING_TASKS, *AGORA_TASKS, *DAP_TASKS[:1]}] or TASKS
# Architecture pruning (seed 004): `main` has the first task and ratio's search with magnitude pruning beside it;
# `all` every task x ratio with the random and importance architectures at the search's FLOPs, magnitude pruning and
# IMP (IMP's five rounds: about 5 min of a core; the two structured baselines about 4).
# TinyBERT (seed 001): `main` task-distills Bort's KD student on the first of tinybert.tasks; its ablations (and
# general distillation, Bort's objective tinybert) are presets/tinybert-ablation.yaml.


rule all:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=TASKS),
        comparison_report("first_seed"),
        comparison_report("competitors_all_seeds"),
        comparison_report("all_seeds"),
        comparison_report("tasks_first_seed"),
        BORT_REPORTS,
        AGORA_REPORTS,
        SPARSE_EVALUATIONS,
        "results/models/first_seed/table.md",
        "results/models/all_seeds/table.md",
        dap_reports("main"),
        dap_reports("all"),
        tinybert_reports("main"),
        tinybert_reports("all"),


rule main:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=MAIN_TASKS),
        comparison_report("first_seed"),
        BORT_REPORTS,
        AGORA_FIRST_SEED_REPORTS,
        "results/models/first_seed/table.md",
        dap_reports("main"),
        tinybert_reports("main"),


def evaluated_models(scope):
    return [*expand("models/{task}/base/evaluate/metrics.json", task=MAIN_TASKS if scope == "first_seed" else TASKS),
            *(comparison_runs(scope, "evaluation") if HEAD_PRUNING_TASKS else []),
            *expand("models/{task}/{method}/seed_{seed}/evaluate/metrics.json", task=AGORA_TASKS,
                    method=list(FINAL_STAGE_OF_AGORA_METHOD),
                    seed=AGORA_SEEDS[:1] if scope == "first_seed" else AGORA_SEEDS),
            *[f"models/{task}/{method}/evaluate/metrics.json"
              for task, method in tinybert_runs("main" if scope == "first_seed" else "all")]]


# ---- model_table: every model measured one after another in one job, so that latencies compare side by side ----
rule model_table:
    input:
        metrics=lambda wildcards: evaluated_models(wildcards.scope),
        pretrained=expand("models/bort/pretrain/{objective}", objective=BORT_OBJECTIVES),
        code=code("model_table"),
    output:
        markdown="results/models/{scope}/table.md",
        table="results/models/{scope}/table.csv",
        metrics="results/models/{scope}/models_metrics.json",
        html=report("results/models/{scope}/table.html", caption="report/model_table.rst", category="All models",
                    subcategory="{scope}", labels={"scope": "{scope}"}),
    params:
        hp=hparams("model_table"),
    log:
        "logs/model_table/{scope}.log",
    wildcard_constraints:
        scope="all_seeds|first_seed",
    threads: all_cores
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.model_table --metrics {input.metrics} --pretrained {input.pretrained} "
        "--output-md {output.markdown} --output-csv {output.table} --output-json {output.metrics} "
        "--output-html {output.html} {params.hp} --threads {threads} --log-file {log}"
