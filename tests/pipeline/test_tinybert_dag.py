"""TinyBERT's jobs in the DAG (dry runs, nothing executed): `main` task-distills the default run on the first task;
the ablation preset plans one chain per task and run, skips the intermediate stage where a run asks, starts No GD
from the randomly initialized architecture and pretrains the GD student beside kd and mlm."""
import yaml

from conftest import REPO_ROOT
from test_dag import planned_jobs, symlinked_workflow
from workflow_scripts.pipeline.params import merge_params, tinybert_methods


def workflow_with_preset(tmp_path, preset):
    for name in ("Snakefile", "rules"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    params = merge_params(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()),
                          yaml.safe_load((REPO_ROOT / "presets" / f"{preset}.yaml").read_text()))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path, params


def outputs_of(jobs, rule):
    return {output for job_rule, output in jobs if job_rule == rule}


def test_main_task_distills_bort_kd_student_on_the_first_task(tmp_path):
    jobs = planned_jobs(symlinked_workflow(tmp_path), "main")
    assert outputs_of(jobs, "tinybert_intermediate") == {"models/gen_cola/tinybert/distill_intermediate"}
    assert outputs_of(jobs, "tinybert_prediction") == {"models/gen_cola/tinybert/distill_prediction"}
    assert outputs_of(jobs, "evaluate_tinybert") == {"models/gen_cola/tinybert/evaluate/metrics.json"}
    assert "results/tinybert/main/report.md, results/tinybert/main/report.csv" in outputs_of(jobs, "tinybert_report")
    assert not outputs_of(jobs, "bort_init")  # the KD student: no random start, no general distillation
    assert not any("pretrain/tinybert" in output for _, output in jobs)


def test_the_ablation_preset_plans_one_chain_per_task_and_run(tmp_path):
    workdir, params = workflow_with_preset(tmp_path, "tinybert-ablation")
    jobs = planned_jobs(workdir, "results/tinybert/all/report.md")
    tasks, runs = params["tinybert"]["tasks"], tinybert_methods(params)
    assert outputs_of(jobs, "tinybert_prediction") == {f"models/{task}/{run}/distill_prediction"
                                                       for task in tasks for run in runs}
    assert outputs_of(jobs, "tinybert_intermediate") == {f"models/{task}/{run}/distill_intermediate"
                                                         for task in tasks for run in runs
                                                         if run != "tinybert_no_td"}
    assert outputs_of(jobs, "bort_init") == {"models/bort/init"}
    assert any(output.startswith("models/bort/pretrain/tinybert") for output in outputs_of(jobs, "kd_pretrain"))
    assert outputs_of(jobs, "augment_task") == {f"data/{task}/augmented/raw" for task in tasks}
