# Differentiable architecture pruning with a FLOPs target (seed 004) and its structured baselines, from each task's
# fine-tuned model (the teacher) at each ratio R of dap.ratios:
#   models/{task}/dap/ratio_{R}/search                     <- dap_search (alpha and weights; the pruned model)
#   models/{task}/dap_{variant}/ratio_{R}/search           <- dap_search with dap.variants' overrides (ablations)
#   models/{task}/dap_{random,importance}/ratio_{R}/select <- dap_select (the search's head and FFN counts)
#   data/{task}/augmented/{raw,tokenized}                  <- augment_task, tokenize_augmented (when asked for)
#   models/{task}/{method}/ratio_{R}/distill_intermediate  <- distill_intermediate (TinyBERT's first stage)
#   models/{task}/{method}/ratio_{R}/distill_prediction    <- distill_prediction (its second stage)
#   models/{task}/{method}/ratio_{R}/evaluate/metrics.json <- evaluate_dap (dev, and test when labelled)
#   results/dap/{main,all}/{task}/ratio_{R}/report.md      <- dap_report (FLOPs, measured speed-up, metric, change;
#                                                             magnitude pruning (main) and IMP (all) beside)
# The training jobs take one thread each, so that the methods' independent chains run side by side.

DAP = config["dap"]
DAP_TASKS = DAP["tasks"]
DAP_RATIOS = [f"{ratio:g}" for ratio in DAP["ratios"]]
DAP_SEARCHES = ["dap", *DAP["variants"]]
DAP_BASELINES = [f"dap_{baseline}" for baseline in DAP["baselines"]]
DAP_METHODS = [*DAP_SEARCHES, *DAP_BASELINES]
AUGMENTATION = config["task_distillation"]["augmentation"]


def dap_runs(pattern, tasks=None, ratios=None, methods=None):
    return [pattern.format(task=task, ratio=ratio, method=method) for task in (tasks or DAP_TASKS)
            for ratio in (ratios or DAP_RATIOS) for method in (methods or DAP_METHODS)]


def dap_reports(scope):
    """main: the first task and ratio's search, beside magnitude pruning; all: every task x ratio, with the
    structured baselines at the search's FLOPs and both unstructured baselines (IMP's rounds take about 5 min of a
    core, the random and importance architectures' selections and distillations about 4)."""
    tasks, ratios = (DAP_TASKS[:1], DAP_RATIOS[:1]) if scope == "main" else (DAP_TASKS, DAP_RATIOS)
    return [f"results/dap/{scope}/{task}/ratio_{ratio}/report.md" for task in tasks for ratio in ratios]


def dap_methods_in(scope):
    """The report's architecture-pruning models: the searches (and their variants) in main, their baselines too in all."""
    return DAP_SEARCHES if scope == "main" else DAP_METHODS


def unstructured_beside(wildcards):
    """The unstructured baselines of the report's task (rules/sparse.smk): magnitude in `main`, both in `all`."""
    methods = ("/magnitude/",) if wildcards.scope == "main" else ("/magnitude/", "/imp/")
    return [path for path in SPARSE_EVALUATIONS
            if path.startswith(f"models/{wildcards.task}/") and any(method in path for method in methods)]


def pruned_start(wildcards):
    """What the two-stage fine-tune starts from: the search's pruned model, or the baseline's selection."""
    stage = "search" if wildcards.method in DAP_SEARCHES else "select"
    return f"models/{wildcards.task}/{wildcards.method}/ratio_{wildcards.ratio}/{stage}"


def distillation_data(wildcards):
    """The tokenized task, or its masked-LM augmentation when task_distillation.augmentation asks for variants."""
    augmented = AUGMENTATION["variants_per_example"] > 0
    return f"data/{wildcards.task}/augmented/tokenized" if augmented else f"data/{wildcards.task}/tokenized"


wildcard_constraints:
    ratio=r"0\.\d+",


# ---- augment_task: TinyBERT's masked-LM augmentation of the training split (task_distillation.augmentation) ----
rule augment_task:
    input:
        raw="data/{task}/raw",
        masked_lm=AUGMENTATION["masked_lm"],
        code=code("augment_task"),
    output:
        directory("data/{task}/augmented/raw"),
    params:
        hp=hparams("augment_task"),
    log:
        "logs/augment_task/{task}.log",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.augment_task --raw {input.raw} --masked-lm {input.masked_lm} "
        "--output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- tokenize_augmented: the augmented splits tokenized like the task's own ------------------------------------
rule tokenize_augmented:
    input:
        raw="data/{task}/augmented/raw",
        tokenizer="models/base",
        code=code("tokenize_task"),
    output:
        directory("data/{task}/augmented/tokenized"),
    params:
        hp=hparams("tokenize_augmented"),
    log:
        "logs/tokenize_augmented/{task}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.tokenize_task --raw {input.raw} --tokenizer {input.tokenizer} "
        "--output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- dap_search: alpha (sigmoid masks on heads and FFN units) and weights together, the target moving 1 -> R ----
rule dap_search:
    input:
        teacher="models/{task}/base/finetune_initial",
        data="data/{task}/tokenized",
        code=code("dap_search"),
    output:
        directory("models/{task}/{method}/ratio_{ratio}/search"),
    params:
        hp=hparams("dap_search"),
    log:
        "logs/dap_search/{task}-{method}-ratio_{ratio}.log",
    wildcard_constraints:
        task="|".join(DAP_TASKS) or "$^",
        method="|".join(DAP_SEARCHES),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.dap_search --teacher {input.teacher} --data {input.data} --output {output} "
        "{params.hp} --threads {threads} --log-file {log}"


# ---- dap_select: the random and importance architectures with the search's counts of heads and FFN units -------
rule dap_select:
    input:
        model="models/{task}/base/finetune_initial",
        search="models/{task}/dap/ratio_{ratio}/search",
        data="data/{task}/tokenized",
        code=code("dap_select"),
    output:
        directory("models/{task}/{method}/ratio_{ratio}/select"),
    params:
        hp=hparams("dap_select"),
    log:
        "logs/dap_select/{task}-{method}-ratio_{ratio}.log",
    wildcard_constraints:
        task="|".join(DAP_TASKS) or "$^",
        method="|".join(DAP_BASELINES) or "$^",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.dap_select --model {input.model} --search {input.search} "
        "--data {input.data} --output {output} {params.hp} --threads {threads} --log-file {log}"


DISTILL_COMMAND = ("{PYTHON} -m workflow_scripts.stages.distill_task --student {input.student} --teacher {input.teacher} "
                   "--data {input.data} --output {output} {params.hp} --threads {threads} --log-file {log}")


# ---- distill_intermediate: TinyBERT's first stage (embedding, hidden-state and attention-score MSEs) ------------
rule distill_intermediate:
    input:
        student=pruned_start,
        teacher="models/{task}/base/finetune_initial",
        data=distillation_data,
        code=code("distill_task"),
    output:
        directory("models/{task}/{method}/ratio_{ratio}/distill_intermediate"),
    params:
        hp=hparams("distill_intermediate"),
    log:
        "logs/distill_intermediate/{task}-{method}-ratio_{ratio}.log",
    wildcard_constraints:
        task="|".join(DAP_TASKS) or "$^",
        method="|".join(DAP_METHODS),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        DISTILL_COMMAND


# ---- distill_prediction: TinyBERT's second stage (soft cross-entropy to the teacher's logits) -------------------
rule distill_prediction:
    input:
        student="models/{task}/{method}/ratio_{ratio}/distill_intermediate",
        teacher="models/{task}/base/finetune_initial",
        data=distillation_data,
        code=code("distill_task"),
    output:
        directory("models/{task}/{method}/ratio_{ratio}/distill_prediction"),
    params:
        hp=hparams("distill_prediction"),
    log:
        "logs/distill_prediction/{task}-{method}-ratio_{ratio}.log",
    wildcard_constraints:
        task="|".join(DAP_TASKS) or "$^",
        method="|".join(DAP_METHODS),
    priority: LONG_CHAIN
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        DISTILL_COMMAND


# ---- evaluate_dap: dev (and test) metrics of a pruned, distilled model -> DVC metrics --------------------------
rule evaluate_dap:
    input:
        model="models/{task}/{method}/ratio_{ratio}/distill_prediction",
        data="data/{task}/tokenized",
        code=code("evaluate"),
    output:
        "models/{task}/{method}/ratio_{ratio}/evaluate/metrics.json",
    params:
        hp=hparams("evaluate"),
    log:
        "logs/evaluate/{task}-{method}-ratio_{ratio}.log",
    wildcard_constraints:
        task="|".join(DAP_TASKS) or "$^",
        method="|".join(DAP_METHODS),
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        EVALUATE_COMMAND


# ---- dap_report: the seed's table (FLOPs, CPU speed-up, metric, % change), models timed one after another -------
rule dap_report:
    input:
        base="models/{task}/base/evaluate/metrics.json",
        metrics=lambda wildcards: dap_runs("models/{task}/{method}/ratio_{ratio}/evaluate/metrics.json",
                                           [wildcards.task], [wildcards.ratio], dap_methods_in(wildcards.scope)),
        sparse=unstructured_beside,
        searches=lambda wildcards: dap_runs("models/{task}/{method}/ratio_{ratio}/search", [wildcards.task],
                                            [wildcards.ratio], DAP_SEARCHES),
        code=code("dap_report"),
    output:
        markdown="results/dap/{scope}/{task}/ratio_{ratio}/report.md",
        table="results/dap/{scope}/{task}/ratio_{ratio}/report.csv",
        plots=[report("results/dap/{scope}/{task}/ratio_{ratio}/search.svg", caption="../report/dap_search.rst",
                      category="Architecture pruning", subcategory="{scope}",
                      labels={"task": "{task}", "ratio": "{ratio}", "scope": "{scope}"}),
               "results/dap/{scope}/{task}/ratio_{ratio}/search.png"],
    params:
        hp=hparams("dap_report"),
    log:
        "logs/dap_report/{scope}-{task}-ratio_{ratio}.log",
    wildcard_constraints:
        task="|".join(DAP_TASKS) or "$^",
        scope="main|all",
    threads: all_cores
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.dap_report --base {input.base} --metrics {input.metrics} {input.sparse} "
        "--searches {input.searches} --output-md {output.markdown} --output-csv {output.table} --plots {output.plots} "
        "{params.hp} --threads {threads} --log-file {log}"
