# Layer-by-layer head pruning (AUBER): for each task and method, a chain of cached targets, one pair per layer,
#   models/{task}/{method}/layer_{l}/prune     <- the previous layer's fine-tuned checkpoint (or finetune_initial)
#   models/{task}/{method}/layer_{l}/finetune  <- that checkpoint, fine-tuned on the layer's mini-train
# then finetune_final (early stopping on a share of train), `evaluate`, and report_layers (per-layer dev plot).
# `snakemake models/gen_mrpc/auber/layer_3/finetune` builds exactly the chain up to layer 3.


def chain_start(wildcards):
    return f"models/{wildcards.task}/base/finetune_initial"


def layer_checkpoint(wildcards, layer):
    return f"models/{wildcards.task}/{wildcards.method}/layer_{layer}/finetune"


def previous_checkpoint(wildcards):
    """What layer l's pruning starts from: the checkpoint after the layer processed before it."""
    layer = int(wildcards.layer)
    if layer not in LAYER_ORDER:
        raise WorkflowError(f"layer {layer} does not exist: the model has layers 0..{NUM_LAYERS - 1}")
    position = LAYER_ORDER.index(layer)
    return chain_start(wildcards) if position == 0 else layer_checkpoint(wildcards, LAYER_ORDER[position - 1])


# ---- prune_layer: the method chooses heads of layer l on mini-dev; the checkpoint is pruned physically ---------
rule prune_layer:
    input:
        model=previous_checkpoint,
        data="data/{task}/tokenized",
        code=code("prune_layer"),
    output:
        directory("models/{task}/{method}/layer_{layer}/prune"),
    params:
        hp=lambda wildcards: stage_hparams(config, "auber", wildcards.task, layer=int(wildcards.layer), extra={
            "seed": "seed", "mini_dev_fraction": "head_pruning.mini_dev_fraction",
            "batch_size": "evaluate.batch_size", "attn_implementation": "model.attn_implementation"}),
    log:
        "logs/prune_layer/{task}-{method}-{layer}.log",
    wildcard_constraints:
        method="|".join(HEAD_PRUNING_METHODS),
    threads: workflow.cores
    resources:
        mem_mb=8000,
    shell:
        "{PYTHON} -m workflow_scripts.prune_layer --method {wildcards.method} --layer {wildcards.layer} "
        "--model {input.model} --data {input.data} --output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- finetune_layer: the pruned checkpoint fine-tuned on the layer's mini-train at a small rate (paper: 2e-6) ---
rule finetune_layer:
    input:
        model="models/{task}/{method}/layer_{layer}/prune",
        data="data/{task}/tokenized",
        code=code("finetune"),
    output:
        directory("models/{task}/{method}/layer_{layer}/finetune"),
    params:
        hp=lambda wildcards: stage_hparams(config, "finetune_layer", wildcards.task, extra={
            "seed": "seed", "attn_implementation": "model.attn_implementation"}),
    log:
        "logs/finetune_layer/{task}-{method}-{layer}.log",
    wildcard_constraints:
        method="|".join(HEAD_PRUNING_METHODS),
    threads: workflow.cores
    resources:
        mem_mb=8000,
    shell:
        "{PYTHON} -m workflow_scripts.finetune --model {input.model} --data {input.data} --output {output} "
        "--train-indices {input.model}/mini_split.json {params.hp} --threads {threads} --log-file {log}"


# ---- finetune_final: after the last layer, the training set with early stopping on a held-out share of it ------
rule finetune_final:
    input:
        model=lambda wildcards: layer_checkpoint(wildcards, LAYER_ORDER[-1]),
        data="data/{task}/tokenized",
        code=code("finetune"),
    output:
        directory("models/{task}/{method}/finetune_final"),
    params:
        hp=lambda wildcards: stage_hparams(config, "finetune_final", wildcards.task, extra={
            "seed": "seed", "attn_implementation": "model.attn_implementation",
            "eval_batch_size": "evaluate.batch_size"}),
    log:
        "logs/finetune_final/{task}-{method}.log",
    wildcard_constraints:
        method="|".join(HEAD_PRUNING_METHODS),
    threads: workflow.cores
    resources:
        mem_mb=8000,
    shell:
        "{PYTHON} -m workflow_scripts.finetune --model {input.model} --data {input.data} --output {output} "
        "{params.hp} --threads {threads} --log-file {log}"


# ---- report_layers: dev score after every layer (a DVC plot) and what each layer's search did ------------------
rule report_layers:
    input:
        initial=chain_start,
        pruned=lambda wildcards: [f"models/{wildcards.task}/{wildcards.method}/layer_{layer}/prune"
                                  for layer in LAYER_ORDER],
        finetuned=lambda wildcards: [layer_checkpoint(wildcards, layer) for layer in LAYER_ORDER],
        final="models/{task}/{method}/finetune_final",
        data="data/{task}/tokenized",
        code=code("report_layers"),
    output:
        plot="results/{task}/{method}/dev_by_layer.csv",
        metrics="results/{task}/{method}/layerwise_metrics.json",
    params:
        hp=lambda wildcards: hparams_from_keys(config, {"batch_size": "evaluate.batch_size"}),
    log:
        "logs/report_layers/{task}-{method}.log",
    wildcard_constraints:
        method="|".join(HEAD_PRUNING_METHODS),
    threads: workflow.cores
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.report_layers --data {input.data} --initial {input.initial} "
        "--pruned {input.pruned} --finetuned {input.finetuned} --final {input.final} "
        "--output-plot {output.plot} --output-metrics {output.metrics} {params.hp} --threads {threads} --log-file {log}"
