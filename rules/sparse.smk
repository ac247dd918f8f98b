# Unstructured pruning baselines on unstructured_pruning.tasks: one-shot global magnitude pruning, and IMP with
# rewinding (Chen et al. 2020, BERT-Tickets). Weights of Q, K, V, attention output, intermediate and output dense
# (and the pooler with prune_pooler) are ranked by |w| over all of them; each checkpoint carries masks.safetensors,
# which keep the pruned weights at zero through its fine-tune and which the next round continues from.
#   models/{task}/magnitude/sparsity_{s}/prune      <- prune_magnitude: the initial fine-tune pruned to s at once
#   models/{task}/magnitude/sparsity_{s}/finetune   <- finetune_magnitude: fine-tuned with the masks kept
#   models/{task}/imp/round_{k}/ticket              <- imp_prune: round k-1's fine-tune (round 1: the initial
#                                                      fine-tune) pruned to k x rate, backbone rewound to models/base
#   models/{task}/imp/round_{k}/finetune            <- imp_finetune: the ticket fine-tuned (every round but the last)
#   models/{task}/imp/sparsity_{s}/finetune         <- imp_finetune_final: the last round's ticket fine-tuned
#   models/{task}/{magnitude,imp}/sparsity_{s}/evaluate/metrics.json  <- evaluate_sparse (dev, and test if labelled)
# `snakemake models/gen_cola/imp/round_2/ticket` builds the chain up to round 2. Jobs run on one thread, as the
# head-pruning chains: results are bit-reproducible for a fixed thread count.
import re

from workflow_scripts.pipeline.params import imp_round_sparsities, sparsity_tag

UNSTRUCTURED_TASKS = config["unstructured_pruning"]["tasks"]
MAGNITUDE_SPARSITY = sparsity_tag(config["unstructured_pruning"]["magnitude"]["sparsity"])
IMP_ROUNDS = len(imp_round_sparsities(config["unstructured_pruning"]["imp"]))
IMP_SPARSITY = sparsity_tag(config["unstructured_pruning"]["imp"]["target_sparsity"])
SPARSE_TASK = "|".join(UNSTRUCTURED_TASKS) or "$^"
# What `all` adds: each baseline's dev (and test) metrics.
SPARSE_EVALUATIONS = [f"models/{task}/{method}/sparsity_{sparsity}/evaluate/metrics.json" for task in UNSTRUCTURED_TASKS
                      for method, sparsity in (("magnitude", MAGNITUDE_SPARSITY), ("imp", IMP_SPARSITY))]


def rounds_pattern(last):
    return "|".join(str(k) for k in range(1, last + 1)) or "$^"


def imp_previous(wildcards):
    """What round k prunes: round k-1's fine-tune; round 1 prunes the task's initial fine-tune (IMP's round 0)."""
    k = int(wildcards.round)
    if k == 1:
        return f"models/{wildcards.task}/base/finetune_initial"
    return f"models/{wildcards.task}/imp/round_{k - 1}/finetune"


SPARSE_FINETUNE_COMMAND = ("{PYTHON} -m workflow_scripts.stages.sparse_finetune --model {input.model} "
                           "--data {input.data} --output {output} {params.hp} --threads {threads} --log-file {log}")


# ---- prune_magnitude: one-shot global L1 pruning of the initial fine-tune to unstructured_pruning.magnitude ------
rule prune_magnitude:
    input:
        model="models/{task}/base/finetune_initial",
        code=code("sparse_prune"),
    output:
        directory("models/{task}/magnitude/sparsity_{sparsity}/prune"),
    params:
        hp=hparams("prune_magnitude"),
    log:
        "logs/prune_magnitude/{task}-sparsity_{sparsity}.log",
    wildcard_constraints:
        task=SPARSE_TASK,
        sparsity=re.escape(MAGNITUDE_SPARSITY),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.sparse_prune --model {input.model} --output {output} {params.hp} "
        "--threads {threads} --log-file {log}"


# ---- finetune_magnitude: the pruned model fine-tuned with its masks kept (finetune_initial's recipe) ----------
rule finetune_magnitude:
    input:
        model="models/{task}/magnitude/sparsity_{sparsity}/prune",
        data="data/{task}/tokenized",
        code=code("sparse_finetune"),
    output:
        directory("models/{task}/magnitude/sparsity_{sparsity}/finetune"),
    params:
        hp=hparams("finetune_magnitude"),
    log:
        "logs/finetune_magnitude/{task}-sparsity_{sparsity}.log",
    wildcard_constraints:
        task=SPARSE_TASK,
        sparsity=re.escape(MAGNITUDE_SPARSITY),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        SPARSE_FINETUNE_COMMAND


# ---- imp_prune: round k's ticket: prune 'rate' more of the original weights, rewind the backbone, keep masks ----
rule imp_prune:
    input:
        model=imp_previous,
        pretrained="models/base",
        code=code("sparse_prune"),
    output:
        directory("models/{task}/imp/round_{round}/ticket"),
    params:
        hp=hparams("imp_prune"),
        previous_masks=lambda wildcards, input: (f"--previous-masks {input.model}/masks.safetensors"
                                                 if int(wildcards.round) > 1 else ""),
    log:
        "logs/imp_prune/{task}-round_{round}.log",
    wildcard_constraints:
        task=SPARSE_TASK,
        round=rounds_pattern(IMP_ROUNDS),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.sparse_prune --model {input.model} {params.previous_masks} "
        "--rewind-to {input.pretrained} --output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- imp_finetune: round k's ticket fine-tuned with its masks kept (every round before the last) ---------------
rule imp_finetune:
    input:
        model="models/{task}/imp/round_{round}/ticket",
        data="data/{task}/tokenized",
        code=code("sparse_finetune"),
    output:
        directory("models/{task}/imp/round_{round}/finetune"),
    params:
        hp=hparams("imp_finetune"),
    log:
        "logs/imp_finetune/{task}-round_{round}.log",
    wildcard_constraints:
        task=SPARSE_TASK,
        round=rounds_pattern(IMP_ROUNDS - 1),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        SPARSE_FINETUNE_COMMAND


# ---- imp_finetune_final: the last round's ticket (target_sparsity) fine-tuned: IMP's result ---------------------
rule imp_finetune_final:
    input:
        model=f"models/{{task}}/imp/round_{IMP_ROUNDS}/ticket",
        data="data/{task}/tokenized",
        code=code("sparse_finetune"),
    output:
        directory("models/{task}/imp/sparsity_{sparsity}/finetune"),
    params:
        hp=hparams("imp_finetune"),
    log:
        "logs/imp_finetune_final/{task}-sparsity_{sparsity}.log",
    wildcard_constraints:
        task=SPARSE_TASK,
        sparsity=re.escape(IMP_SPARSITY),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        SPARSE_FINETUNE_COMMAND


# ---- evaluate_sparse: dev (and test) metrics of either baseline's final checkpoint -> DVC metrics ---------------
rule evaluate_sparse:
    input:
        model="models/{task}/{sparse_method}/sparsity_{sparsity}/finetune",
        data="data/{task}/tokenized",
        code=code("evaluate"),
    output:
        "models/{task}/{sparse_method}/sparsity_{sparsity}/evaluate/metrics.json",
    params:
        hp=hparams("evaluate"),
    log:
        "logs/evaluate/{task}-{sparse_method}-sparsity_{sparsity}.log",
    wildcard_constraints:
        task=SPARSE_TASK,
        sparse_method="magnitude|imp",
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        EVALUATE_COMMAND
