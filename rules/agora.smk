# Agora: the student (default: the distilled Bort student) fine-tuned by teacher-labelled data expansion and
# hyperparameter-set pruning, and its baseline at equal compute.
#   models/{task}/agora/agora_finetune          <- agora_finetune (best model, agora.json, rounds/round_NN/)
#   models/{task}/bort_plain/finetune_plain     <- finetune_plain (the best single set, Agora's training budget)
#   models/{task}/{agora,bort_plain}/evaluate/metrics.json   <- evaluate (dev, and test when labelled)
#   results/agora/{task}/{dev,train_size}_per_round.csv      <- agora_rounds (DVC plots)
#   results/agora/comparison.md                              <- agora_compare
from workflow_scripts.pipeline.params import agora_checkpoint

AGORA = config["agora"]
AGORA_TASKS = AGORA["tasks"]

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
        directory("models/{task}/agora/agora_finetune"),
    params:
        hp=hparams("agora_finetune"),
    log:
        "logs/agora_finetune/{task}.log",
    wildcard_constraints:
        task="|".join(AGORA_TASKS) or "$^",
    threads: 1
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_finetune --student {input.student} --teacher {input.teacher} "
        "--raw {input.raw} --output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- finetune_plain: the same student and head, the best single set, as many training examples as Agora -------
rule finetune_plain:
    input:
        student=lambda wildcards: agora_checkpoint(config, "student", wildcards.task),
        agora="models/{task}/agora/agora_finetune",
        raw="data/{task}/raw",
        code=code("agora_plain"),
    output:
        directory("models/{task}/bort_plain/finetune_plain"),
    params:
        hp=hparams("finetune_plain"),
    log:
        "logs/finetune_plain/{task}.log",
    wildcard_constraints:
        task="|".join(AGORA_TASKS) or "$^",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_plain --student {input.student} --agora {input.agora} --raw {input.raw} "
        "--output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- agora_rounds: the dev score of every round's best model and the training-set size (DVC plots) -------------
rule agora_rounds:
    input:
        agora="models/{task}/agora/agora_finetune",
        data="data/{task}/tokenized",
        code=code("agora_report"),
    output:
        dev="results/agora/{task}/dev_per_round.csv",
        size="results/agora/{task}/train_size_per_round.csv",
        plots=[report("results/agora/{task}/rounds.svg", caption="../report/agora_rounds.rst", category="Agora",
                      subcategory="Rounds", labels={"task": "{task}"}),
               "results/agora/{task}/rounds.png"],
    params:
        hp=hparams("agora_rounds"),
    log:
        "logs/agora_rounds/{task}.log",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_report rounds --agora {input.agora} --data {input.data} "
        "--dev-output {output.dev} --size-output {output.size} --plots {output.plots} {params.hp} "
        "--threads {threads} --log-file {log}"


# ---- agora_compare: Agora against the plain fine-tune, task by task (score, wall time, points added) -----------
rule agora_compare:
    input:
        agora=expand("models/{task}/agora/agora_finetune", task=AGORA_TASKS),
        plain=expand("models/{task}/bort_plain/finetune_plain", task=AGORA_TASKS),
        agora_metrics=expand("models/{task}/agora/evaluate/metrics.json", task=AGORA_TASKS),
        plain_metrics=expand("models/{task}/bort_plain/evaluate/metrics.json", task=AGORA_TASKS),
        rounds=expand("results/agora/{task}/dev_per_round.csv", task=AGORA_TASKS),
        code=code("agora_report"),
    output:
        table="results/agora/comparison.md",
        html=report("results/agora/comparison.html", caption="../report/agora_comparison.rst", category="Agora",
                    subcategory="Agora against plain fine-tuning", labels={"content": "every task"}),
        metrics="results/agora/comparison_metrics.json",
    log:
        "logs/agora_compare/compare.log",
    shell:
        "{PYTHON} -m workflow_scripts.stages.agora_report compare --agora {input.agora} --plain {input.plain} "
        "--agora-metrics {input.agora_metrics} --plain-metrics {input.plain_metrics} --output {output.table} "
        "--output-html {output.html} --metrics-output {output.metrics} --log-file {log}"
