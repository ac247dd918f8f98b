"""One stage graph: dvc.yaml is what the Snakemake DAG says, and each stage's code/params are the right ones."""
import subprocess
import sys

import yaml

from conftest import REPO_ROOT
from workflow_repo import command_env
from workflow_scripts.pipeline.dag import code_files, dvc_stage_name


def test_committed_dvc_yaml_agrees_with_the_snakemake_dag():
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.pipeline.dvc_sync", "--check"], cwd=REPO_ROOT,
                            env=command_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_when_dvc_yaml_and_the_dag_disagree(tmp_path):
    for name in ("Snakefile", "rules", "params.yaml", "dvc.yaml"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    (tmp_path / "params.yaml").unlink()
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["tasks"] = params["tasks"][:2]          # the DAG shrinks; the committed dvc.yaml does not
    params["head_pruning"]["first_seed_tasks"] = [t for t in params["head_pruning"]["first_seed_tasks"]
                                                  if t in params["tasks"]]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.pipeline.dvc_sync", "--check"], cwd=tmp_path,
                            env=command_env(), capture_output=True, text=True)
    assert result.returncode == 1
    assert "disagrees with the Snakemake DAG" in result.stderr and "-  finetune_initial-gen_rte:" in result.stdout


def test_every_stage_of_dvc_yaml_tracks_its_code_params_and_outputs():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    rte = stages["finetune_initial-gen_rte"]
    assert rte["cmd"] == "snakemake --cores all --allowed-rules finetune_initial -- models/gen_rte/base/finetune_initial"
    assert "finetune_initial.per_task.gen_rte" in rte["params"]
    assert "finetune_initial.per_task.gen_rte" not in stages["finetune_initial-gen_mrpc"]["params"]
    assert "finetune_initial.default.learning_rate" in stages["finetune_initial-gen_mrpc"]["params"]
    assert {"models/base", "data/gen_rte/tokenized", "workflow_scripts/core/training.py"} <= set(rte["deps"])
    assert stages["evaluate-gen_rte-base"]["metrics"] == [
        {"models/gen_rte/base/evaluate/metrics.json": {"cache": False}}]


def test_code_files_follow_imports_transitively():
    files = code_files("workflow_scripts.stages.finetune", root=str(REPO_ROOT))
    assert {"workflow_scripts/stages/finetune.py", "workflow_scripts/core/training.py", "workflow_scripts/core/models.py",
            "workflow_scripts/core/io_utils.py"} <= set(files)
    assert "workflow_scripts/stages/prepare_task.py" not in files and "workflow_scripts/pipeline/dag.py" not in files


def test_stage_names_use_only_characters_dvc_allows():
    assert dvc_stage_name("prune_layer", {"task": "gen_mrpc", "method": "auber", "layer": 3}) == \
        "prune_layer-gen_mrpc-auber-3"
    assert dvc_stage_name("evaluate", {"task": "my.task/x"}) == "evaluate-my_task_x"


def symlinked_workflow(tmp_path, **param_changes):
    """The repo's Snakefile/rules with a modified params.yaml, in a temporary folder (nothing is run)."""
    for name in ("Snakefile", "rules"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for section, values in param_changes.items():
        params[section].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def planned_jobs(workdir, target) -> list[tuple[str, str]]:
    """(rule, output) of every job `snakemake --forceall --dry-run <target>` would run."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--forceall", "--dry-run", target],
                            cwd=workdir, env=command_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[-1].rstrip(":")
        elif line.strip().startswith("output:") and rule:
            jobs.append((rule, line.split(":", 1)[1].strip()))
    return jobs


def test_a_layer_target_builds_exactly_the_chain_up_to_that_layer(tmp_path):
    jobs = planned_jobs(symlinked_workflow(tmp_path), "models/gen_mrpc/auber/seed_0/layer_3/finetune")
    chain = [output for rule, output in jobs if rule in ("prune_layer", "finetune_layer")]
    assert sorted(chain) == sorted(f"models/gen_mrpc/auber/seed_0/layer_{layer}/{stage}"
                                   for layer in range(4) for stage in ("prune", "finetune"))
    assert {rule for rule, _ in jobs} == {"fetch_model", "prepare_task", "tokenize_task", "finetune_initial",
                                          "prune_layer", "finetune_layer"}


def test_top_down_order_starts_the_chain_at_the_last_layer(tmp_path):
    workdir = symlinked_workflow(tmp_path, head_pruning={"layer_order": "top_down"})
    chain = [output for rule, output in planned_jobs(workdir, "models/gen_cola/auber/seed_0/layer_3/prune")
             if rule == "prune_layer"]
    assert sorted(chain) == [f"models/gen_cola/auber/seed_0/layer_{layer}/prune" for layer in (3, 4, 5)]
    final = planned_jobs(workdir, "models/gen_cola/auber/seed_0/finetune_final")
    assert ("finetune_layer", "models/gen_cola/auber/seed_0/layer_0/finetune") in final  # the last one processed


def test_dvc_runs_the_same_chain_for_a_layer_stage():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["prune_layer-gen_cola-auber-0-3"]["deps"][0] == "data/gen_cola/tokenized"
    assert "models/gen_cola/auber/seed_0/layer_2/finetune" in stages["prune_layer-gen_cola-auber-0-3"]["deps"]
    assert "models/gen_cola/base/finetune_initial" in stages["prune_layer-gen_cola-auber-0-0"]["deps"]
    assert "auber.per_layer.3" in stages["prune_layer-gen_cola-auber-0-3"]["params"]
    assert "auber.per_layer.2" not in stages["prune_layer-gen_cola-auber-0-3"]["params"]
    assert stages["report_layers-gen_cola-auber-0"]["plots"] == [
        {"results/gen_cola/auber/seed_0/dev_by_layer.csv": {"cache": False, "x": "step", "y": "dev_score"}}]
    result = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot", "finetune_layer-gen_cola-auber-0-3"],
                            cwd=REPO_ROOT, env=command_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    upstream = {name.strip('"') for name in __import__("re").findall(r'"([^"]+)"', result.stdout)}
    assert {f"prune_layer-gen_cola-auber-0-{layer}" for layer in range(4)} <= upstream
    assert "prune_layer-gen_cola-auber-0-4" not in upstream and "finetune_initial-gen_cola" in upstream


def test_a_competitor_prunes_after_auber_decided_that_layer_for_the_same_seed(tmp_path):
    jobs = planned_jobs(symlinked_workflow(tmp_path), "models/gen_cola/michel/seed_2/layer_1/prune")
    pruned = sorted(output for rule, output in jobs if rule == "prune_layer")
    # AUBER's layers 0 and 1 give the budgets; michel's own layer 0 gives the checkpoint; nothing above layer 1
    assert pruned == ["models/gen_cola/auber/seed_2/layer_0/prune", "models/gen_cola/auber/seed_2/layer_1/prune",
                      "models/gen_cola/michel/seed_2/layer_0/prune", "models/gen_cola/michel/seed_2/layer_1/prune"]


def test_a_global_ranking_needs_every_layer_of_auber_and_fixes_the_budget_once(tmp_path):
    workdir = symlinked_workflow(tmp_path, competitors={"budget": "global_ranking"})
    jobs = planned_jobs(workdir, "models/gen_cola/random/seed_0/layer_0/prune")
    assert ("global_ranking", "models/gen_cola/random/seed_0/global_ranking.json") in jobs
    assert {output for rule, output in jobs if rule == "prune_layer"} == {
        *(f"models/gen_cola/auber/seed_0/layer_{layer}/prune" for layer in range(6)),
        "models/gen_cola/random/seed_0/layer_0/prune"}


def test_the_reverse_ablation_runs_top_down_while_auber_runs_bottom_up(tmp_path):
    jobs = planned_jobs(symlinked_workflow(tmp_path), "models/gen_cola/auber_reverse/seed_0/finetune_final")
    assert ("finetune_layer", "models/gen_cola/auber_reverse/seed_0/layer_0/finetune") in jobs
    assert not any("models/gen_cola/auber/" in output for _, output in jobs)
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    reverse = stages["prune_layer-gen_cola-auber_reverse-0-4"]
    assert "models/gen_cola/auber_reverse/seed_0/layer_5/finetune" in reverse["deps"]
    assert "head_pruning.ablations.auber_reverse" in reverse["params"]
    query = stages["prune_layer-gen_cola-auber_query-1-0"]
    assert "head_pruning.ablations.auber_query" in query["params"]
    assert "head_pruning.ablations.auber_query" not in stages["prune_layer-gen_cola-auber-1-0"]["params"]


def test_the_comparison_report_reads_every_method_and_seed_and_declares_its_plots():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    report = stages["compare_methods"]
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["head_pruning"]
    runs = {dep for dep in report["deps"] if dep.endswith("/evaluate/metrics.json") and "/seed_" in dep}
    assert len(runs) == len(params["methods"]) * len(params["seeds"]) * len(params["tasks"])
    plots = {path: spec for entry in report["plots"] for path, spec in entry.items()}
    assert plots["results/comparison/all_seeds/plots/heads_gen_cola_auber_heatmap.csv"]["template"] == "confusion"
    assert plots["results/comparison/all_seeds/plots/dev_by_layer_gen_cola_voita.csv"]["y"] == "dev_score"
    assert report["metrics"] == [{"results/comparison/all_seeds/comparison_metrics.json": {"cache": False}}]
    assert {"results/comparison/all_seeds/report.html": {"cache": False}} in report["outs"]  # git versions it
    assert "models/gen_cola/auber/seed_0/layer_0/prune" in stages["prune_layer-gen_cola-auber-0-0"]["outs"]
    first = stages["compare_methods_first_seed"]
    assert not any("/seed_1/" in dep or "auber_query" in dep for dep in first["deps"])  # make run: no ablations


def test_per_layer_overrides_must_cover_every_layer_of_the_model(tmp_path):
    workdir = symlinked_workflow(tmp_path, auber={"per_layer": [{}, {}]})
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--dry-run"], cwd=workdir,
                            env=command_env(), capture_output=True, text=True)
    assert result.returncode != 0
    assert "'auber.per_layer' has 2 entries but the model has 6 encoder layers" in result.stdout + result.stderr


def bort_candidate_jobs(tmp_path, **fptas_changes):
    for name in ("Snakefile", "rules"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["bort"]["fptas"].update(fptas_changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    jobs = planned_jobs(tmp_path, "results/bort/fptas/table.md")
    return sorted(output.split("/")[-2] for rule, output in jobs if rule == "fptas_candidate_train"), jobs


MINILM_HALF_DEPTH = {"depth": 3, "heads": 12, "hidden": 384, "intermediate": 1536}


def test_the_search_has_one_job_per_valid_candidate_and_reference(tmp_path):
    from workflow_scripts.bort.fptas import search_space

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    valid, skipped = search_space(params["bort"]["search_space"])
    tags, jobs = bort_candidate_jobs(tmp_path, epsilon=1, references=[MINILM_HALF_DEPTH])
    assert tags == sorted([c.tag for c in valid] + ["D3_A12_H384_I1536"])
    assert len(valid) == 14 and len(skipped) == 6  # the embedded default's count (docs/bort.md)
    assert not any(c.tag in tags for c in skipped)
    assert [rule for rule, _ in jobs].count("fptas_teacher_cost") == 1


def test_a_larger_epsilon_trains_one_representative_per_interval(tmp_path):
    tags, _ = bort_candidate_jobs(tmp_path, epsilon=4, representative="first", references=[MINILM_HALF_DEPTH])
    assert len(tags) == -(-14 // 4) + 1  # one per interval of 4 (the last has 2), plus the reference


def test_agora_and_its_baseline_run_once_per_seed_and_the_comparison_reads_every_seed(tmp_path):
    workdir = symlinked_workflow(tmp_path, agora={"tasks": ["gen_cola"], "seeds": [0, 3]})
    jobs = planned_jobs(workdir, "results/agora/comparison.md")
    outputs = {rule: sorted(output for r, output in jobs if r == rule)
               for rule in ("agora_finetune", "finetune_plain", "evaluate_agora")}
    assert outputs["agora_finetune"] == [f"models/gen_cola/agora/seed_{seed}/agora_finetune" for seed in (0, 3)]
    assert outputs["finetune_plain"] == [f"models/gen_cola/bort_plain/seed_{seed}/finetune_plain" for seed in (0, 3)]
    assert outputs["evaluate_agora"] == [f"models/gen_cola/{method}/seed_{seed}/evaluate/metrics.json"
                                         for method in ("agora", "bort_plain") for seed in (0, 3)]
    assert not any(rule in ("evaluate", "evaluate_chain") and "agora" in output for rule, output in jobs)


def test_main_runs_agora_and_its_baseline_on_the_first_seed_and_leaves_the_comparison_to_all(tmp_path):
    workdir = symlinked_workflow(tmp_path, agora={"tasks": ["gen_cola"], "seeds": [4, 0, 3]})
    main_jobs = planned_jobs(workdir, "main")
    assert sorted(output for rule, output in main_jobs if rule in ("agora_finetune", "finetune_plain")) == [
        "models/gen_cola/agora/seed_4/agora_finetune", "models/gen_cola/bort_plain/seed_4/finetune_plain"]
    assert "agora_compare" not in {rule for rule, _ in main_jobs}
    # the base model is fine-tuned on the tasks main's methods use (gen_cola), every task in `all`
    assert sorted(output for rule, output in main_jobs if rule == "finetune_initial") == [
        "models/gen_cola/base/finetune_initial"]
    assert "agora_compare" in {rule for rule, _ in planned_jobs(workdir, "all")}


def test_dvc_tracks_agoras_shares_and_takes_the_seed_from_the_stage_path():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    agora = stages["agora_finetune-gen_cola-1"]
    assert agora["cmd"].endswith("-- models/gen_cola/agora/seed_1/agora_finetune")
    assert {"agora.selection_fraction", "agora.pick_fraction"} <= set(agora["params"])
    assert "seed" not in agora["params"]              # one source: the path's seed, one of agora.seeds
    plain = stages["finetune_plain-gen_cola-1"]
    assert "models/gen_cola/agora/seed_1/agora_finetune" in plain["deps"]
    assert "agora.pick_fraction" in plain["params"]
    compare = stages["agora_compare"]
    seeds = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["agora"]["seeds"]
    assert {f"models/gen_cola/bort_plain/seed_{seed}/evaluate/metrics.json" for seed in seeds} <= set(compare["deps"])
    assert compare["metrics"] == [{"results/agora/comparison_metrics.json": {"cache": False}}]


def test_an_imp_round_needs_the_rounds_before_it_and_the_final_ticket_is_the_last_round_fine_tuned(tmp_path):
    workdir = symlinked_workflow(tmp_path)   # params.yaml: target 0.5 at 0.1 per round -> 5 rounds
    jobs = planned_jobs(workdir, "models/gen_cola/imp/round_3/ticket")
    assert sorted(output for rule, output in jobs if rule.startswith("imp_")) == sorted(
        [f"models/gen_cola/imp/round_{k}/ticket" for k in (1, 2, 3)] +
        [f"models/gen_cola/imp/round_{k}/finetune" for k in (1, 2)])
    assert ("finetune_initial", "models/gen_cola/base/finetune_initial") in jobs   # round 1 prunes it
    final = planned_jobs(workdir, "models/gen_cola/imp/sparsity_0.5/evaluate/metrics.json")
    assert ("imp_prune", "models/gen_cola/imp/round_5/ticket") in final
    assert ("imp_finetune_final", "models/gen_cola/imp/sparsity_0.5/finetune") in final
    assert not any(output == "models/gen_cola/imp/round_5/finetune" for _, output in final)  # not fine-tuned twice
    magnitude = planned_jobs(workdir, "models/gen_cola/magnitude/sparsity_0.5/evaluate/metrics.json")
    assert {rule for rule, _ in magnitude} == {"fetch_model", "prepare_task", "tokenize_task", "finetune_initial",
                                               "prune_magnitude", "finetune_magnitude", "evaluate_sparse"}
