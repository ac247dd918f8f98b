# BERT compression workflow. Parameters: params.yaml (validated before any work). Rules: rules/*.smk.
#   snakemake --cores all                       # the whole pipeline on the embedded default (every seed)
#   snakemake --cores all main                  # what `make run` builds: every method once (the first seed)
#   snakemake --cores all models/gen_mrpc/base/evaluate/metrics.json   # one target and what it needs
# dvc.yaml is generated from this DAG (`make dvc.yaml`); `dvc repro` runs the same jobs through Snakemake.

include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/finetune.smk"
include: "rules/head_pruning.smk"
include: "rules/bort.smk"

# Reports are cheap: on a cluster they run where Snakemake runs, not as jobs.
localrules: report_layers, compare_methods, compare_methods_first_seed, fptas_select, bort_report


def comparison_report(scope):
    return [f"results/comparison/{scope}/report.html"] if HEAD_PRUNING_TASKS else []


# Bort: the search's table and plot, and the distillation-versus-MLM comparison of the chosen architecture.
BORT_REPORTS = ["results/bort/fptas/table.md", "results/bort/pretrain/comparison.md"]


rule all:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=TASKS),
        comparison_report("first_seed"),
        comparison_report("all_seeds"),
        BORT_REPORTS,


rule main:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=TASKS),
        comparison_report("first_seed"),
        BORT_REPORTS,
