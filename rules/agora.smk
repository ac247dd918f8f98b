# Agora: the student (default: the distilled Bort student) fine-tuned by teacher-labelled data expansion and
# hyperparameter-set pruning, and its baseline at equal compute, once per seed in agora.seeds (the selection and
# pick shares, psi's choices, the models' initialization, shuffling and dropout):
#   models/{task}/agora/seed_{seed}/agora_finetune       <- agora_finetune (model returned, agora.json, rounds/round_NN/)
#   models/{task}/bort_plain/seed_{seed}/finetune_plain  <- finetune_plain (the best single set, Agora's budget)
#   models/{task}/{agora,bort_plain}/seed_{seed}/evaluate/metrics.json  <- evaluate_agora (dev, and test when labelled)
#   results/agora/{task}/seed_{seed}/{dev,train_size}_per_round.csv    <- agora_rounds (DVC plots)
#   results/agora/comparison.md                                         <- agora_compare (mean +- std over seeds)
from workflow_scripts.pipeline.params import agora_checkpoint

AGORA = config["agora"]
AGORA_TASKS = AGORA["tasks"]
AGORA_SEEDS = AGORA["seeds"]

# The student's recipe: what Agora and its baseline share.
def agora_inputs(wildcards):
    inputs = {"student": agora_checkpoint(config, "student", wildcards.task),
              "teacher": agora_checkpoint(config, "teacher", wildcards.task)}
    if AGORA["psi"] == "masked_lm":
        inputs["masked_lm"] = AGORA["masked_lm"]["model"]
    return inputs


# ---- agora_finetune: rounds of (train every surviving set, expand the data through psi and the teacher, prune) ---
rule agora_finetune:
    input:
        unpack(agora_inputs),
        raw="data/{task}/raw",
        code=code("agora_finetune"),
    output:
        directory("models/{task}/agora/seed_{seed}/agora_finetune"),
    params:
        hp=hparams("agora_finetune"),
    log:
        "logs/agora_finetune/{task}-seed_{seed}.log",
    wildcard_constraints:
        task="|".join(AGORA_TASKS) or "$^",
    priority: CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_finetune --student {input.student} --teacher {input.teacher} "
        "--raw {input.raw} --output {output} --seed {wildcards.seed} {params.hp} --threads {threads} --log-file {log}"


# ---- finetune_plain: the same student and head, the best single set, as many training examples as Agora -------
rule finetune_plain:
    input:
        student=lambda wildcards: agora_checkpoint(config, "student", wildcards.task),
        agora="models/{task}/agora/seed_{seed}/agora_finetune",
        raw="data/{task}/raw",
        code=code("agora_plain"),
    output:
        directory("models/{task}/bort_plain/seed_{seed}/finetune_plain"),
    params:
        hp=hparams("finetune_plain"),
    log:
        "logs/finetune_plain/{task}-seed_{seed}.log",
    wildcard_constraints:
        task="|".join(AGORA_TASKS) or "$^",
    priority: CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_plain --student {input.student} --agora {input.agora} --raw {input.raw} "
        "--output {output} --seed {wildcards.seed} {params.hp} --threads {threads} --log-file {log}"


# ---- evaluate_agora: dev (and test) metrics of one seed's Agora or plain model -> DVC metrics -----------------
rule evaluate_agora:
    input:
        model=lambda wildcards: (f"models/{wildcards.task}/{wildcards.method}/seed_{wildcards.seed}/"
                                 f"{FINAL_STAGE_OF_AGORA_METHOD[wildcards.method]}"),
        data="data/{task}/tokenized",
        code=code("evaluate"),
    output:
        "models/{task}/{method}/seed_{seed}/evaluate/metrics.json",
    params:
        hp=hparams("evaluate"),
    log:
        "logs/evaluate/{task}-{method}-seed_{seed}.log",
    wildcard_constraints:
        task="|".join(AGORA_TASKS) or "$^",
        method="|".join(FINAL_STAGE_OF_AGORA_METHOD),
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        EVALUATE_COMMAND


# ---- agora_rounds: every round model's dev score (reported only) and the training-set size (DVC plots) ---------
rule agora_rounds:
    input:
        agora="models/{task}/agora/seed_{seed}/agora_finetune",
        data="data/{task}/tokenized",
        code=code("agora_report"),
    output:
        dev="results/agora/{task}/seed_{seed}/dev_per_round.csv",
        size="results/agora/{task}/seed_{seed}/train_size_per_round.csv",
        plots=[report("results/agora/{task}/seed_{seed}/rounds.svg", caption="../report/agora_rounds.rst",
                      category="Agora", subcategory="Rounds", labels={"task": "{task}", "seed": "{seed}"}),
               "results/agora/{task}/seed_{seed}/rounds.png"],
    params:
        hp=hparams("agora_rounds"),
    log:
        "logs/agora_rounds/{task}-seed_{seed}.log",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_report rounds --agora {input.agora} --data {input.data} "
        "--dev-output {output.dev} --size-output {output.size} --plots {output.plots} {params.hp} "
        "--threads {threads} --log-file {log}"


# ---- agora_compare: Agora against the plain fine-tune, per task mean +- std over seeds and paired by seed -------
def agora_runs(pattern, seeds=None):
    """One path per (task, seed) of `seeds` (default: agora.seeds), tasks outer: the order the report's lists share."""
    return [pattern.format(task=task, seed=seed) for task in AGORA_TASKS for seed in (seeds or AGORA_SEEDS)]


rule agora_compare:
    input:
        agora=agora_runs("models/{task}/agora/seed_{seed}/agora_finetune"),
        plain=agora_runs("models/{task}/bort_plain/seed_{seed}/finetune_plain"),
        agora_metrics=agora_runs("models/{task}/agora/seed_{seed}/evaluate/metrics.json"),
        plain_metrics=agora_runs("models/{task}/bort_plain/seed_{seed}/evaluate/metrics.json"),
        rounds=agora_runs("results/agora/{task}/seed_{seed}/dev_per_round.csv"),
        code=code("agora_report"),
    output:
        table="results/agora/comparison.md",
        summary="results/agora/comparison_table.csv",
        seeds="results/agora/comparison_seeds_table.csv",
        html=report("results/agora/comparison.html", caption="../report/agora_comparison.rst", category="Agora",
                    subcategory="Agora against plain fine-tuning", labels={"content": "every task"}),
        metrics="results/agora/comparison_metrics.json",
    log:
        "logs/agora_compare/compare.log",
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_report compare --agora {input.agora} --plain {input.plain} "
        "--agora-metrics {input.agora_metrics} --plain-metrics {input.plain_metrics} --output {output.table} "
        "--output-csv {output.summary} --output-seeds-csv {output.seeds} --output-html {output.html} "
        "--metrics-output {output.metrics} --log-file {log}"
