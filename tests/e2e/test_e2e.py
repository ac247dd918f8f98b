"""The tiny workflow built by the real snakemake (tests/built_workflow.py, once per session): every stage's
checkpoints, metrics, logs and reports, read through the project's tools and DVC. What a changed parameter reruns
is in test_e2e_reruns.py."""
import base64
import json
import re
import sys

import pytest

from built_workflow import DVC, SNAKEMAKE, built  # noqa: F401 (the shared build, a fixture)
from workflow_repo import run
from workflow_scripts.core.io_utils import read_json

pytestmark = pytest.mark.e2e


def embedded_files(report_page: str) -> list[bytes]:
    """The result files a `snakemake --report` page embeds (as base64 data URIs)."""
    return [base64.b64decode(data) for data in re.findall(r";base64,([A-Za-z0-9+/=]+)", report_page)]


def test_snakemake_builds_every_stage_with_checkpoints_metrics_and_logs(built, tmp_path):
    repo = built
    # Snakemake's own report of what was built: the comparison page (its tables) and every figure, by category
    run(SNAKEMAKE + ["--report", str(tmp_path / "report.html")], repo)
    page = (tmp_path / "report.html").read_text()
    embedded = embedded_files(page)
    comparison = (repo / "results/comparison/all_seeds/report.html").read_bytes()
    assert comparison in embedded and b"<table" in comparison and b">auber<" in comparison
    assert (repo / "results/bort/fptas/candidates.svg").read_bytes() in embedded
    assert all(category in page for category in ("Head pruning comparison", "Per-layer", "Bort", "Agora",
                                                 "All models", "Architecture pruning"))
    for task in ("gen_mrpc", "gen_cola"):
        checkpoint = repo / "models" / task / "base" / "finetune_initial"
        assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "config.json").is_file()
        metrics = json.loads((repo / "models" / task / "base" / "evaluate" / "metrics.json").read_text())
        assert metrics["validation"]["num_examples"] == 32 and "accuracy" in metrics["validation"]
        assert (repo / "logs" / "finetune_initial" / f"{task}.log").stat().st_size > 0
    assert "matthews_correlation" in json.loads(
        (repo / "models/gen_cola/base/evaluate/metrics.json").read_text())["validation"]
    assert not list(repo.glob("models/**/.*partial*"))


def test_every_stage_logs_its_peak_memory_and_fits_its_declared_mem_mb(built):
    """Each stage's log ends with its exact peak; the checker's table names each rule that ran, and on the tiny
    models every rule fits its mem_mb (exit 0)."""
    assert "peak resident memory" in (built / "logs/finetune_initial/gen_cola.log").read_text().splitlines()[-1]
    check = run([sys.executable, "-m", "workflow_scripts.tools.memory_check"], built)
    rows = {line.split(" | ")[0].strip("| "): line for line in check.stdout.splitlines()[2:]}
    assert {"finetune_initial", "prune_layer", "kd_pretrain", "dap_search", "evaluate_dap", "model_table"} <= set(rows)
    peak_mb = float(rows["finetune_initial"].split(" | ")[3])
    assert 100 < peak_mb < 4000  # torch alone is over 100 MB resident; a tiny model is far from gigabytes


def test_the_auber_chain_leaves_pruned_checkpoints_search_logs_and_a_per_layer_plot(built):
    repo = built
    for layer in (0, 1):
        pruned = repo / f"models/gen_mrpc/auber/seed_0/layer_{layer}/prune"
        log = json.loads((pruned / "search_log.json").read_text())
        assert log["layer"] == layer and len(log["search"]["episodes"]) == 6
        kept = json.loads((pruned / "config.json").read_text()).get("compression") or {"heads_kept": [None, None]}
        assert (kept["heads_kept"][layer] or list(range(4))) == sorted(set(range(4)) - set(log["pruned_head_ids"]))
        inspected = run([sys.executable, "-m", "workflow_scripts.tools.inspect", str(pruned), "--json"], repo)
        assert json.loads(inspected.stdout)["heads_per_layer"][layer] == 4 - len(log["pruned_head_ids"])
        competitor = json.loads((repo / f"models/gen_mrpc/random/seed_0/layer_{layer}/prune/search_log.json")
                                .read_text())
        assert len(competitor["pruned_head_ids"]) == len(log["pruned_head_ids"])  # the same budget, layer by layer
    table = (repo / "results/gen_mrpc/auber/seed_0/dev_by_layer.csv").read_text().splitlines()
    assert table[0].startswith("step,layer") and len(table) == 1 + 4  # before, two layers, final
    plots = run(DVC + ["plots", "show", "--json"], repo).stdout
    assert "dev_by_layer.csv" in plots and "heads_gen_mrpc_random_heatmap.csv" in plots


def test_the_comparison_report_has_a_row_per_method_and_dvc_sees_its_metrics(built):
    repo = built
    report = (repo / "results/comparison/all_seeds/table.md").read_text()
    rows = [line.split("|")[1].strip() for line in report.split("## test")[0].splitlines() if line.startswith("| ")]
    assert rows[1:] == ["base", "random", "auber"]
    assert "<svg" in (repo / "results/comparison/all_seeds/report.html").read_text()
    assert "comparison_metrics.json" in run(DVC + ["metrics", "show"], repo).stdout


def test_bort_searches_every_valid_candidate_then_pretrains_the_choice_with_checkpoints(built):
    repo = built
    selection = json.loads((repo / "results/bort/fptas/selection.json").read_text())
    assert selection["valid_architectures"] == 2 and selection["skipped_architectures"] == 2
    assert selection["chosen"]["tag"] in {"D1_A2_H16_I32", "D1_A2_H32_I32"}  # never the reference D2_A2_H16_I16
    assert "| T |" in (repo / "results/bort/fptas/table.md").read_text()
    for objective in ("kd", "mlm"):
        folder = repo / "models/bort/pretrain" / objective
        assert (folder / "model.safetensors").is_file() and (folder / "checkpoints/step_0000003").is_dir()
        assert json.loads((folder / "metrics.json").read_text())["architecture"] == selection["chosen"]["tag"]
        curve = (repo / f"results/bort/pretrain/{objective}_curve.csv").read_text().splitlines()
        assert curve[0].startswith("objective,step,mlm_accuracy") and len(curve) == 1 + 3  # steps 2, 4, 6
    inspected = run([sys.executable, "-m", "workflow_scripts.tools.inspect", "models/bort/pretrain/kd/checkpoints/step_0000003",
                     "--json"], repo)
    assert json.loads(inspected.stdout)["heads_per_layer"] == [2]
    shown = run(DVC + ["metrics", "show"], repo).stdout
    assert "results/bort/pretrain/comparison_metrics.json" in shown


def test_agora_fine_tunes_the_distilled_student_with_rounds_plots_and_its_plain_baseline(built):
    repo = built
    for seed in (0, 1):                                                   # tiny.yaml: agora.seeds
        agora = repo / f"models/gen_mrpc/agora/seed_{seed}/agora_finetune"
        summary = json.loads((agora / "agora.json").read_text())
        assert summary["student"] == "models/bort/pretrain/kd" and len(summary["sets"]) == 2
        assert summary["seed"] == seed and summary["pick_size"] == summary["selection_size"] == 24
        assert sum(len(record["removed"]) for record in summary["rounds"]) == 2  # every set pruned: the loop ended
        assert summary["returned_pick_score"] == max(r["pick_score"] for r in summary["round_scores"])
        assert json.loads((agora / "config.json").read_text())["classifier_extra_layer"]  # tiny.yaml asks for it
        assert (agora / "rounds/round_00/model/model.safetensors").is_file()
        assert (agora / "rounds/round_00/added.jsonl").is_file()
        plain = json.loads((repo / f"models/gen_mrpc/bort_plain/seed_{seed}/finetune_plain/plain.json").read_text())
        assert plain["set"] == summary["first_round_best_set"] and plain["seed"] == seed
        assert plain["training_examples"] >= summary["training_examples"]   # equal compute, at least
        rounds = (repo / f"results/agora/gen_mrpc/seed_{seed}/dev_per_round.csv").read_text().splitlines()
        assert rounds[0].startswith("round,") and len(rounds) == 1 + len(summary["rounds"])
    comparison = (repo / "results/agora/comparison.md").read_text()
    assert "| gen_mrpc | accuracy | dev | 2 |" in comparison and "| gen_mrpc | 1 | dev |" in comparison
    assert json.loads((repo / "results/agora/comparison_metrics.json").read_text())["gen_mrpc"]["dev"]["seeds"] == 2
    table = read_json(str(repo / "results/models/all_seeds/models_metrics.json"))  # without its "checksum" key
    assert set(table) == {"gen_mrpc/base", "gen_cola/base", "gen_mrpc/auber (seed 0)", "gen_mrpc/random (seed 0)",
                          "gen_mrpc/agora (seed 0)", "gen_mrpc/bort_plain (seed 0)", "gen_mrpc/agora (seed 1)",
                          "gen_mrpc/bort_plain (seed 1)", "corpus (held-out MLM)/bort_kd",
                          "corpus (held-out MLM)/bort_mlm", "gen_mrpc/tinybert"}
    assert all(row["latency_b32_ms"] > 0 and row["flops"] > 0 for row in table.values())
    first_seed = read_json(str(repo / "results/models/first_seed/models_metrics.json"))
    assert "gen_mrpc/agora (seed 0)" in first_seed and "gen_mrpc/agora (seed 1)" not in first_seed
    assert "gen_mrpc/tinybert" in first_seed  # the TinyBERT-distilled Bort student
    assert "results/agora/gen_mrpc/seed_1/dev_per_round.csv" in run(DVC + ["plots", "show", "--json"], repo).stdout


def test_dap_prunes_to_the_ratio_and_its_baselines_match_its_flops(built):
    repo = built
    run_folder = repo / "models/gen_mrpc/dap/ratio_0.5"
    search = json.loads((run_folder / "search/search.json").read_text())
    assert search["alpha_entries_updated"] > 0 and search["trajectory"][-1]["target"] == 0.5
    assert 0.5 * (1 - 0.05) <= search["architecture"]["ratio"] <= 0.5 * (1 + 0.05)  # tiny.yaml: tolerance 0.05
    for baseline in ("random", "importance"):
        selection = json.loads((repo / f"models/gen_mrpc/dap_{baseline}/ratio_0.5/select/selection.json").read_text())
        assert selection["flops"] == search["architecture"]["flops"]
    for method in ("dap", "dap_fixed_ratio", "dap_random", "dap_importance"):
        folder = repo / f"models/gen_mrpc/{method}/ratio_0.5"
        log = json.loads((folder / "distill_intermediate/training_log.json").read_text())
        assert log["objective"] == "intermediate" and set(log["loss_terms"][0]) == {"embedding", "hidden", "attention"}
        assert json.loads((folder / "distill_prediction/config.json").read_text())["compression"]["format_version"] == 1
        assert "accuracy" in json.loads((folder / "evaluate/metrics.json").read_text())["validation"]
    report = (repo / "results/dap/all/gen_mrpc/ratio_0.5/report.md").read_text()
    for method in ("unpruned", "dap", "dap_fixed_ratio", "dap_random", "dap_importance", "magnitude (50% sparse)",
                   "imp (20% sparse)"):
        assert f"| {method} |" in report
    inspected = run([sys.executable, "-m", "workflow_scripts.tools.inspect",
                     "models/gen_mrpc/dap/ratio_0.5/distill_prediction", "--json"], repo)
    assert json.loads(inspected.stdout)["heads_per_layer"] == [len(h) for h in search["architecture"]["heads_kept"]]
