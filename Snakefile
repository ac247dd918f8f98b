# BERT compression workflow. Parameters: params.yaml (validated before any work). Rules: rules/*.smk.
#   snakemake --cores all                       # the whole pipeline on the embedded default (every seed)
#   snakemake --cores all main                  # what `make run` builds: every method once (the first seed)
#   snakemake --cores all models/gen_mrpc/base/evaluate/metrics.json   # one target and what it needs
# dvc.yaml is generated from this DAG (`make dvc.yaml`); `dvc repro` runs the same jobs through Snakemake.

include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/finetune.smk"
include: "rules/head_pruning.smk"


def comparison_report(scope):
    return [f"results/comparison/{scope}/report.html"] if HEAD_PRUNING_TASKS else []


rule all:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=TASKS),
        comparison_report("first_seed"),
        comparison_report("all_seeds"),


rule main:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=TASKS),
        comparison_report("first_seed"),
