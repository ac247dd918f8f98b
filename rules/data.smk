# Data and model preparation: the base model folder, each task's splits, and their tokenization.


# ---- fetch_model: the model named in params.yaml as a Hugging Face folder (alias, local folder or hub id) -----
rule fetch_model:
    input:
        code=code("fetch_model"),
    output:
        directory("models/base"),
    params:
        hp=hparams("fetch_model"),
    log:
        "logs/fetch_model/base.log",
    priority: CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.fetch_model --output {output} {params.hp} --threads {threads} --log-file {log}"



# ---- prepare_task: one task's train/validation/test splits as GLUE-schema JSON lines --------------------------
# (built-in tasks: generated or GLUE; a task of your own: its file, folder or hub dataset, from its definition)
rule prepare_task:
    input:
        code=task_code("prepare_task"),
        data=task_data,
    output:
        directory("data/{task}/raw"),
    params:
        hp=hparams("prepare_task"),
    log:
        "logs/prepare_task/{task}.log",
    priority: BEFORE_CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.prepare_task --task {wildcards.task} --output {output} {params.hp} "
        "--log-file {log}"


# ---- tokenize_task: tokens of every split, cached once per task and tokenizer ---------------------------------
rule tokenize_task:
    input:
        raw="data/{task}/raw",
        tokenizer="models/base",
        code=code("tokenize_task"),
    output:
        directory("data/{task}/tokenized"),
    params:
        hp=hparams("tokenize_task"),
    log:
        "logs/tokenize_task/{task}.log",
    priority: BEFORE_CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.tokenize_task --raw {input.raw} --tokenizer {input.tokenizer} "
        "--output {output} {params.hp} --threads {threads} --log-file {log}"
