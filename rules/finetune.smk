# Fine-tuning and evaluation of the unpruned model: the starting point of every method.


# ---- finetune_initial: the pretrained model fine-tuned on one task (AUBER: 3 epochs, lr 2e-5, batch 32) -------
rule finetune_initial:
    input:
        model="models/base",
        data="data/{task}/tokenized",
        code=code("finetune"),
    output:
        directory("models/{task}/base/finetune_initial"),
    params:
        hp=hparams("finetune_initial"),
    log:
        "logs/finetune_initial/{task}.log",
    priority: BEFORE_CRITICAL_PATH
    threads: share_of_cores(2)  # beside Bort's teacher, which needs no fine-tuned model
    resources:
        mem_mb=8000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.finetune --model {input.model} --data {input.data} --output {output} "
        "{params.hp} --threads {threads} --log-file {log}"


EVALUATE_COMMAND = ("{PYTHON} -m workflow_scripts.stages.evaluate --model {input.model} --data {input.data} --output {output} "
                    "{params.hp} --threads {threads} --log-file {log}")


# ---- evaluate: dev metrics (and test, when labelled) of a method's final checkpoint -> DVC metrics -------------
rule evaluate:
    input:
        model=final_checkpoint,
        data="data/{task}/tokenized",
        code=code("evaluate"),
    output:
        "models/{task}/{method}/evaluate/metrics.json",
    params:
        hp=hparams("evaluate"),
    log:
        "logs/evaluate/{task}-{method}.log",
    wildcard_constraints:
        method="|".join(FINAL_STAGE_OF_METHOD),
    # One thread: a job of seconds that waited for both cores to be free ran last in make run, holding up the
    # reports that read it.
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        EVALUATE_COMMAND
