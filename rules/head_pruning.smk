# Layer-by-layer head pruning: AUBER, its competitors and its ablations. For each task, method and seed, a chain of
# cached targets, one pair per layer,
#   models/{task}/{method}/seed_{seed}/layer_{l}/prune     <- the previous layer's fine-tuned checkpoint
#   models/{task}/{method}/seed_{seed}/layer_{l}/finetune  <- that checkpoint, fine-tuned on the layer's mini-train
# then finetune_final (early stopping on a share of train), evaluate_chain, and report_layers (per-layer dev plot).
# Every chain starts from the same fine-tuned model (models/{task}/base/finetune_initial); the seed changes the
# splits, the agent, the random draws and the fine-tunes' shuffling. A competitor's layer l prunes as many heads
# as AUBER's layer l did for the same task and seed (or what a global ranking picked), so only the heads differ.
# `snakemake models/gen_mrpc/auber/seed_0/layer_3/finetune` builds exactly the chain up to layer 3.
#
# Chain jobs run on one thread each: on a CPU box `--cores N` runs N of them at once, which is worth more than
# threads inside one (a layer fine-tune takes 28 s on one thread, 27 s on two), and results do not depend on N.


def run_folder(wildcards):
    return f"models/{wildcards.task}/{wildcards.method}/seed_{wildcards.seed}"


def chain_start(wildcards):
    return f"models/{wildcards.task}/base/finetune_initial"


def layer_checkpoint(wildcards, layer):
    return f"{run_folder(wildcards)}/layer_{layer}/finetune"


def previous_checkpoint(wildcards):
    """What layer l's pruning starts from: the checkpoint after the layer processed before it."""
    order = LAYER_ORDER[wildcards.method]
    layer = int(wildcards.layer)
    if layer not in order:
        raise WorkflowError(f"layer {layer} does not exist: the model has layers 0..{NUM_LAYERS - 1}")
    position = order.index(layer)
    return chain_start(wildcards) if position == 0 else layer_checkpoint(wildcards, order[position - 1])


def competitor_budget(wildcards):
    """A competitor's budget for layer l: AUBER's decision at that layer (same task and seed), or the global
    ranking; nothing for AUBER and its ablations."""
    if method_algorithm(config, wildcards.method) not in COMPETITOR_ALGORITHMS:
        return []
    if config["competitors"]["budget"] == "global_ranking":
        return f"{run_folder(wildcards)}/global_ranking.json"
    return f"models/{wildcards.task}/auber/seed_{wildcards.seed}/layer_{wildcards.layer}/prune"


# ---- prune_layer: the method chooses heads of layer l on mini-dev; the checkpoint is pruned physically ---------
rule prune_layer:
    input:
        model=previous_checkpoint,
        data="data/{task}/tokenized",
        budget=competitor_budget,
        code=code("prune_layer"),
    output:
        directory("models/{task}/{method}/seed_{seed}/layer_{layer}/prune"),
    params:
        hp=hparams("prune_layer"),
        algorithm=lambda wildcards: method_algorithm(config, wildcards.method),
        budget=lambda wildcards, input: f"--budget {input.budget}" if input.budget else "",
        layer_order=lambda wildcards: method_layer_order(config, wildcards.method),
    log:
        "logs/prune_layer/{task}-{method}-seed_{seed}-{layer}.log",
    priority: chain_priority
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.prune_layer --method {params.algorithm} --method-name {wildcards.method} "
        "--layer {wildcards.layer} --seed {wildcards.seed} --layer-order {params.layer_order} --model {input.model} "
        "--data {input.data} --output {output} {params.budget} {params.hp} --threads {threads} --log-file {log}"


# ---- global_ranking: competitors.budget = global_ranking; one ranking over all heads of the starting model ------
rule global_ranking:
    input:
        model=chain_start,
        data="data/{task}/tokenized",
        auber=lambda wildcards: [f"models/{wildcards.task}/auber/seed_{wildcards.seed}/layer_{layer}/prune"
                                 for layer in range(NUM_LAYERS)],
        code=code("global_ranking"),
    output:
        "models/{task}/{method}/seed_{seed}/global_ranking.json",
    params:
        hp=hparams("global_ranking"),
    log:
        "logs/global_ranking/{task}-{method}-seed_{seed}.log",
    wildcard_constraints:
        method="|".join(m for m in HEAD_PRUNING_METHODS if m in COMPETITOR_ALGORITHMS) or "no_competitor",
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.global_ranking --method {wildcards.method} --seed {wildcards.seed} "
        "--model {input.model} --data {input.data} --auber-searches {input.auber} --output {output} {params.hp} "
        "--threads {threads} --log-file {log}"


# ---- finetune_layer: the pruned checkpoint fine-tuned on the layer's mini-train at a small rate (paper: 2e-6) ---
rule finetune_layer:
    input:
        model="models/{task}/{method}/seed_{seed}/layer_{layer}/prune",
        data="data/{task}/tokenized",
        code=code("finetune"),
    output:
        directory("models/{task}/{method}/seed_{seed}/layer_{layer}/finetune"),
    params:
        hp=hparams("finetune_layer"),
    log:
        "logs/finetune_layer/{task}-{method}-seed_{seed}-{layer}.log",
    priority: chain_priority
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.finetune --model {input.model} --data {input.data} --output {output} "
        "--train-indices {input.model}/mini_split.json --seed {wildcards.seed} {params.hp} --threads {threads} "
        "--log-file {log}"


# ---- finetune_final: after the last layer, the training set with early stopping on a held-out share of it ------
rule finetune_final:
    input:
        model=lambda wildcards: layer_checkpoint(wildcards, LAYER_ORDER[wildcards.method][-1]),
        data="data/{task}/tokenized",
        code=code("finetune"),
    output:
        directory("models/{task}/{method}/seed_{seed}/finetune_final"),
    params:
        hp=hparams("finetune_final"),
    log:
        "logs/finetune_final/{task}-{method}-seed_{seed}.log",
    priority: chain_priority
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.finetune --model {input.model} --data {input.data} --output {output} "
        "--seed {wildcards.seed} {params.hp} --threads {threads} --log-file {log}"


# ---- evaluate_chain: dev (and test) metrics of the chain's final checkpoint -> DVC metrics ----------------------
rule evaluate_chain:
    input:
        model="models/{task}/{method}/seed_{seed}/finetune_final",
        data="data/{task}/tokenized",
        code=code("evaluate"),
    output:
        "models/{task}/{method}/seed_{seed}/evaluate/metrics.json",
    params:
        hp=hparams("evaluate"),
    log:
        "logs/evaluate/{task}-{method}-seed_{seed}.log",
    wildcard_constraints:
        method="|".join(HEAD_PRUNING_METHODS) or "$^",  # Agora's seeded runs have evaluate_agora
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        EVALUATE_COMMAND


# ---- report_layers: dev score after every layer (a DVC plot) and what each layer's search did ------------------
rule report_layers:
    input:
        initial=chain_start,
        pruned=lambda wildcards: [f"{run_folder(wildcards)}/layer_{layer}/prune" for layer in LAYER_ORDER[wildcards.method]],
        finetuned=lambda wildcards: [layer_checkpoint(wildcards, layer) for layer in LAYER_ORDER[wildcards.method]],
        final="models/{task}/{method}/seed_{seed}/finetune_final",
        data="data/{task}/tokenized",
        code=code("report_layers"),
    output:
        plot=report("results/{task}/{method}/seed_{seed}/dev_by_layer.csv", caption="../report/dev_by_layer.rst",
                    category="Per-layer", subcategory="{task}: every chain",
                    labels={"method": "{method}", "seed": "{seed}"}),
        metrics="results/{task}/{method}/seed_{seed}/layerwise_metrics.json",
    params:
        hp=hparams("report_layers"),
    log:
        "logs/report_layers/{task}-{method}-seed_{seed}.log",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.report_layers --data {input.data} --initial {input.initial} "
        "--pruned {input.pruned} --finetuned {input.finetuned} --final {input.final} "
        "--output-plot {output.plot} --output-metrics {output.metrics} {params.hp} --threads {threads} --log-file {log}"


# ---- compare_methods: the paper's table (mean +- std over seeds), plots, heatmaps, an HTML page ----------------
# results/comparison/all_seeds: every method and seed in head_pruning (`snakemake --cores N`, `dvc repro`);
# results/comparison/first_seed: AUBER and its competitors on the first seed (`make run`, within its time budget;
# the ablations are variants of AUBER, run by the full comparison);
# results/comparison/competitors_all_seeds: AUBER and its competitors on every seed;
# results/comparison/tasks_first_seed: AUBER and its competitors on the first seed of every task in head_pruning's
# tasks and first_seed_tasks (the comparison's breadth over tasks at a fraction of its cost).
COMPETITION = [m for m in HEAD_PRUNING_METHODS if method_algorithm(config, m) == m]
COMPARISON_SCOPES = {  # scope -> (methods, seeds, tasks)
    "all_seeds": (HEAD_PRUNING_METHODS, HEAD_PRUNING_SEEDS, HEAD_PRUNING_TASKS),
    "first_seed": (COMPETITION, HEAD_PRUNING_SEEDS[:1], HEAD_PRUNING_TASKS),
    "competitors_all_seeds": (COMPETITION, HEAD_PRUNING_SEEDS, HEAD_PRUNING_TASKS),
    "tasks_first_seed": (COMPETITION, HEAD_PRUNING_SEEDS[:1],
                         HEAD_PRUNING_TASKS + [t for t in HEAD_PRUNING_FIRST_SEED_TASKS if t not in HEAD_PRUNING_TASKS]),
}


def comparison_runs(scope, kind):
    files = {"evaluation": "models/{task}/{method}/seed_{seed}/evaluate/metrics.json",
             "layerwise": "results/{task}/{method}/seed_{seed}/layerwise_metrics.json"}[kind]
    methods, seeds, tasks = COMPARISON_SCOPES[scope]
    return [files.format(task=task, method=method, seed=seed) for task in tasks for method in methods for seed in seeds]


def comparison_inputs(scope):
    _, _, tasks = COMPARISON_SCOPES[scope]
    return {"base": expand("models/{task}/base/evaluate/metrics.json", task=tasks),
            "evaluations": comparison_runs(scope, "evaluation"), "layerwise": comparison_runs(scope, "layerwise"),
            "code": code("compare_methods")}


def comparison_files(scope):
    """The comparison's outputs; the page and the SVG figures go into `snakemake --report` (captions: report/)."""
    methods, _, tasks = COMPARISON_SCOPES[scope]
    folder = f"results/comparison/{scope}"
    scope_label = scope.replace("_", " ")

    def figures(name, caption, category, figure):
        files = []
        for task in tasks:
            svg = report(f"{folder}/plots/{name}_{task}.svg", caption=f"../report/{caption}.rst", category=category,
                         subcategory=scope_label, labels={"task": task, "figure": figure})
            files += [f"{folder}/plots/{name}_{task}.png", svg]
        return files

    return {"table": f"{folder}/table.csv", "markdown": f"{folder}/table.md", "agent": f"{folder}/agent.csv",
            "metrics": f"{folder}/comparison_metrics.json",
            "html": report(f"{folder}/report.html", caption="../report/comparison.rst",
                           category="Head pruning comparison", subcategory=scope_label,
                           labels={"page": "tables, paired differences, figures"}),
            "plots": [f"{folder}/plots/dev_by_layer_{task}_{method}.csv"
                      for task in tasks for method in methods],
            "heatmaps": [f"{folder}/plots/heads_{task}_{method}_heatmap.csv"
                         for task in tasks for method in methods],
            "curve_figures": figures("dev_by_layer", "dev_curves", "Per-layer", "dev score layer by layer"),
            "heatmap_figures": figures("heads", "heads_heatmap", "Head pruning comparison", "heads pruned")}


rule compare_methods:
    input:
        **comparison_inputs("all_seeds"),
    output:
        **comparison_files("all_seeds"),
    params:
        folder="results/comparison/all_seeds",
    log:
        "logs/compare_methods/all_seeds.log",
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.compare_methods --base {input.base} --evaluations {input.evaluations} "
        "--layerwise {input.layerwise} --output-dir {params.folder} --log-file {log}"


use rule compare_methods as compare_methods_first_seed with:
    input:
        **comparison_inputs("first_seed"),
    output:
        **comparison_files("first_seed"),
    params:
        folder="results/comparison/first_seed",
    log:
        "logs/compare_methods/first_seed.log",


use rule compare_methods as compare_methods_competitors_all_seeds with:
    input:
        **comparison_inputs("competitors_all_seeds"),
    output:
        **comparison_files("competitors_all_seeds"),
    params:
        folder="results/comparison/competitors_all_seeds",
    log:
        "logs/compare_methods/competitors_all_seeds.log",


use rule compare_methods as compare_methods_tasks_first_seed with:
    input:
        **comparison_inputs("tasks_first_seed"),
    output:
        **comparison_files("tasks_first_seed"),
    params:
        folder="results/comparison/tasks_first_seed",
    log:
        "logs/compare_methods/tasks_first_seed.log",
