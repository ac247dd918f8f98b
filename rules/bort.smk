# Bort: the FPTAS over sub-architectures <D, A, H, I> of the maximum point T (the base model), then distillation
# pretraining of the chosen one.
#   data/corpus/tokenized                                  <- prepare_corpus (once, shared by every candidate)
#   models/bort/teacher                                    <- teacher_prep (T as a masked-LM, trained on the corpus)
#   models/bort/teacher_outputs                            <- teacher_outputs (T's top-k outputs, once; mode cached)
#   models/bort/fptas/candidates/D{d}_A{a}_H{h}_I{i}[_E{e}][_S{mode}{m}]/metrics.json   <- fptas_candidate_train,
#                                                          one job each (the suffixes: ALBERT's options, if any)
#   models/bort/fptas/teacher/metrics.json                 <- fptas_teacher_cost (p(T), i(T) by the same protocol)
#   results/bort/fptas/{selection.json,table.md,...}       <- fptas_select
#   models/bort/pretrain/{run}  + results/bort/pretrain/{run}_curve.csv   <- kd_pretrain, one job per objective (kd,
#                                                          mlm) and per variant (bort.pretrain.variants, e.g. stacking)
#   results/bort/pretrain/comparison.md                    <- bort_report
# Candidates are independent: `--cores N` trains N at once (one thread each, which is also what their latency is
# measured on), and on a cluster each is one job.

from workflow_scripts.bort.fptas import OPTION_SUFFIXES, search_plan

BORT = config["bort"]
try:
    # Orders the space by parameters and FLOPs, which needs T's vocabulary: read from the model's config.
    BORT_PLAN = search_plan(config)
except (RuntimeError, ValueError) as error:
    raise WorkflowError(f"bort: {error}") from None
BORT_OBJECTIVES = BORT["pretrain"]["objectives"]
BORT_VARIANTS = BORT["pretrain"]["variants"]
BORT_RUNS = [*BORT_OBJECTIVES, *BORT_VARIANTS]  # what kd_pretrain runs and bort_report compares
CORPUS = "data/corpus/tokenized"
TEACHER = "models/bort/teacher"
TEACHER_OUTPUTS = "models/bort/teacher_outputs"
CACHED_TEACHER = BORT["teacher_outputs"]["mode"] == "cached"


def pretrain_objective(run):
    """kd or mlm: a pretraining run named for its objective, or a variant's objective."""
    return BORT_VARIANTS[run]["objective"] if run in BORT_VARIANTS else run


def cached_teacher_outputs(wildcards):
    """The teacher_outputs folder where T's outputs are cached (and the consumer distills), else nothing."""
    uses_teacher = pretrain_objective(wildcards.get("run", "kd")) == "kd"  # the candidates distill
    return {"teacher_outputs": TEACHER_OUTPUTS} if CACHED_TEACHER and uses_teacher else {}


def teacher_outputs_flag(wildcards, input):
    return f"--teacher-outputs {input.teacher_outputs}" if "teacher_outputs" in input.keys() else ""


def candidate_metrics(candidates):
    return [f"models/bort/fptas/candidates/{candidate.tag}/metrics.json" for candidate in candidates]


# What every candidate measurement reads (the teacher's included), so that one protocol measures all of them.
CANDIDATE_COMMAND = ("{PYTHON} -m workflow_scripts.stages.fptas_candidate --teacher {input.teacher} --corpus {input.corpus} "
                     "--output {output} {params.cached} {params.hp} --threads {threads} --log-file {log}")


# ---- prepare_corpus: unlabelled text (generated, local files or a hub dataset), packed and tokenized once ------
rule prepare_corpus:
    input:
        tokenizer="models/base",
        code=code("prepare_corpus"),
    output:
        directory(CORPUS),
    params:
        hp=hparams("prepare_corpus"),
    log:
        "logs/prepare_corpus/corpus.log",
    priority: CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.prepare_corpus --tokenizer {input.tokenizer} --output {output} {params.hp} "
        "--threads {threads} --log-file {log}"


# ---- teacher_prep: T as a masked-LM (its own head, or one fitted on its frozen encoder) ------------------------
rule teacher_prep:
    input:
        model="models/base",
        corpus=CORPUS,
        code=code("teacher_prep"),
    output:
        directory(TEACHER),
    params:
        hp=hparams("teacher_prep"),
    log:
        "logs/teacher_prep/teacher.log",
    priority: CRITICAL_PATH
    threads: share_of_cores(2)  # beside the pruning chains (see common.smk)
    resources:
        mem_mb=4000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.teacher_prep --model {input.model} --corpus {input.corpus} --output {output} "
        "{params.hp} --threads {threads} --log-file {log}"


# ---- teacher_outputs: T's top-k logits and log-sum-exps at the masked positions, for every consumer's stream -----
rule teacher_outputs:
    input:
        teacher=TEACHER,
        corpus=CORPUS,
        code=code("teacher_outputs"),
    output:
        directory(TEACHER_OUTPUTS),
    params:
        hp=hparams("teacher_outputs"),
    log:
        "logs/teacher_outputs/teacher_outputs.log",
    priority: CRITICAL_PATH
    threads: share_of_cores(2)  # beside the pruning chains (see common.smk)
    resources:
        mem_mb=6000,
    shell:
        "{PYTHON} -m workflow_scripts.stages.teacher_outputs --teacher {input.teacher} --corpus {input.corpus} "
        "--output {output} {params.hp} --threads {threads} --log-file {log}"


# ---- fptas_teacher_cost: p(T), i(T) and T's held-out scores, measured like every candidate ---------------------
rule fptas_teacher_cost:
    input:
        unpack(cached_teacher_outputs),
        teacher=TEACHER,
        corpus=CORPUS,
        code=code("fptas_candidate"),
    output:
        "models/bort/fptas/teacher/metrics.json",
    params:
        hp=hparams("fptas_candidate"),
        cached=teacher_outputs_flag,
    log:
        "logs/fptas_teacher_cost/teacher.log",
    priority: CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        CANDIDATE_COMMAND + " --teacher-only"


# ---- fptas_candidate_train: one architecture, trained s steps on the surrogate error, then measured -----------
rule fptas_candidate_train:
    input:
        unpack(cached_teacher_outputs),
        teacher=TEACHER,
        corpus=CORPUS,
        code=code("fptas_candidate"),
    output:
        "models/bort/fptas/candidates/D{depth}_A{heads}_H{hidden}_I{intermediate}/metrics.json",
    params:
        hp=hparams("fptas_candidate"),
        cached=teacher_outputs_flag,
        architecture="D{depth}_A{heads}_H{hidden}_I{intermediate}",
    log:
        "logs/fptas_candidate_train/D{depth}_A{heads}_H{hidden}_I{intermediate}.log",
    wildcard_constraints:
        depth=r"\d+",
        heads=r"\d+",
        hidden=r"\d+",
        intermediate=r"\d+" + OPTION_SUFFIXES,  # and ALBERT's options' tag suffixes (_E128, _Sall2), when any
    priority: CRITICAL_PATH
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        CANDIDATE_COMMAND + " --architecture {params.architecture}"


# ---- fptas_select: W-coefficients, the interval step's choice, Table 1 and the candidates' plot ----------------
rule fptas_select:
    input:
        teacher="models/bort/fptas/teacher/metrics.json",
        candidates=candidate_metrics(BORT_PLAN.to_train),
        references=candidate_metrics(BORT_PLAN.references),
        code=code("fptas_select"),
    output:
        selection="results/bort/fptas/selection.json",
        table="results/bort/fptas/table.md",
        table_csv="results/bort/fptas/table.csv",
        table_html=report("results/bort/fptas/table.html", caption="../report/fptas_table.rst", category="Bort",
                          subcategory="FPTAS search", labels={"content": "Table 1: the chosen architecture"}),
        scatter="results/bort/fptas/candidates_scatter.csv",
        svg=report("results/bort/fptas/candidates.svg", caption="../report/fptas_candidates.rst", category="Bort",
                   subcategory="FPTAS search", labels={"content": "every candidate's W inputs"}),
        png="results/bort/fptas/candidates.png",
    params:
        hp=hparams("fptas_select"),
        counts=f"--valid {BORT_PLAN.valid} --skipped {len(BORT_PLAN.skipped)}",
    log:
        "logs/fptas_select/selection.log",
    priority: CRITICAL_PATH
    threads: 1
    shell:
        "{PYTHON} -m workflow_scripts.stages.fptas_select --teacher {input.teacher} --candidates {input.candidates} "
        "--references {input.references} --output-dir results/bort/fptas {params.hp} {params.counts} --log-file {log}"


def pretrain_launcher(wildcards):
    """Nothing, or torch.distributed.run when more than one process is asked for (DDP). The interpreter is not part
    of it: a param that held the venv's path would rerun the stage in every other checkout."""
    processes = BORT["pretrain"]["nproc_per_node"]
    return "" if processes == 1 else f"-m torch.distributed.run --standalone --nproc_per_node {processes}"


# ---- kd_pretrain: the chosen architecture pretrained by distillation (kd), by MLM alone (mlm), or as a variant -----
# (bort.pretrain.variants: an objective with its own progressive stacking or sentence objective); the objective
# comes through params.hp.
rule kd_pretrain:
    input:
        unpack(cached_teacher_outputs),
        teacher=TEACHER,
        corpus=CORPUS,
        selection="results/bort/fptas/selection.json",
        code=code("kd_pretrain"),
    output:
        model=directory("models/bort/pretrain/{run}"),
        curve="results/bort/pretrain/{run}_curve.csv",
    params:
        hp=hparams("kd_pretrain"),
        launcher=pretrain_launcher,
        cached=teacher_outputs_flag,
    log:
        "logs/kd_pretrain/{run}.log",
    wildcard_constraints:
        run="|".join(BORT_RUNS),
    priority: CRITICAL_PATH
    threads: share_of_cores(len(BORT_RUNS))
    resources:
        mem_mb=8000,
        gpu=BORT["pretrain"]["nproc_per_node"] if BORT["pretrain"]["nproc_per_node"] > 1 else 0,
    shell:
        "{PYTHON} {params.launcher} -m workflow_scripts.stages.kd_pretrain --teacher {input.teacher} "
        "--corpus {input.corpus} --selection {input.selection} --output {output.model} --curve {output.curve} "
        "{params.cached} {params.hp} --threads {threads} --log-file {log}"


# ---- bort_report: KD against MLM-only pretraining (the seed's Table 3 / Figure 1) -----------------------------
rule bort_report:
    input:
        curves=expand("results/bort/pretrain/{run}_curve.csv", run=BORT_RUNS),
        selection="results/bort/fptas/selection.json",
        teacher=TEACHER,
        code=code("bort_report"),
    output:
        report="results/bort/pretrain/comparison.md",
        html=report("results/bort/pretrain/comparison.html", caption="../report/bort_comparison.rst",
                    category="Bort", subcategory="Pretraining", labels={"content": "distillation against MLM only"}),
        metrics="results/bort/pretrain/comparison_metrics.json",
        plots=[report("results/bort/pretrain/curves.svg", caption="../report/bort_curves.rst", category="Bort",
                      subcategory="Pretraining", labels={"content": "held-out MLM curves"}),
               "results/bort/pretrain/curves.png"],
    log:
        "logs/bort_report/report.log",
    threads: 1
    shell:
        "{PYTHON} -m workflow_scripts.stages.bort_report --curves {input.curves} --selection {input.selection} "
        "--teacher {input.teacher} "
        "--output {output.report} --output-html {output.html} --metrics {output.metrics} --plots {output.plots} "
        "--log-file {log}"
