# BERT compression workflow. Parameters: params.yaml (validated before any work). Rules: rules/*.smk.
#   snakemake --cores all                       # the whole pipeline on the embedded default
#   snakemake --cores all models/gen_mrpc/base/evaluate/metrics.json   # one target and what it needs
# dvc.yaml is generated from this DAG (`make dvc.yaml`); `dvc repro` runs the same jobs through Snakemake.

include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/finetune.smk"
include: "rules/head_pruning.smk"


rule all:
    input:
        expand("models/{task}/base/evaluate/metrics.json", task=TASKS),
        expand("models/{task}/{method}/evaluate/metrics.json", task=HEAD_PRUNING_TASKS, method=HEAD_PRUNING_METHODS),
        expand("results/{task}/{method}/dev_by_layer.csv", task=HEAD_PRUNING_TASKS, method=HEAD_PRUNING_METHODS),
