"""The comparison report from fixture metrics: statistics on fixed numbers, tables against hand-written ones, the
paired differences, the DVC plot CSVs, the figures and the HTML page, and the stage's command line."""
import json

import pandas as pd
import pytest

from workflow_scripts.reports import comparison
from workflow_scripts.reports.render import csv_text, markdown_table
from workflow_scripts.stages import compare_methods

DEV = {"auber": [0.40, 0.36, 0.38], "random": [0.30, 0.34, 0.26]}
TEST = {"auber": [0.35, 0.33, 0.31], "random": [0.30, 0.28, 0.29]}
PRUNED = {"auber": {"0": [1, 2], "1": [0]}, "random": {"0": [3], "1": [0, 1]}}
METRIC = "matthews_correlation"


def evaluation(dev, test):
    return {"task": "gen_cola", "headline_metric": METRIC, "model": "m",
            "validation": {METRIC: dev, "accuracy": 0.7}, "test": {METRIC: test}}


def layerwise(method, seed, dev):
    return {"task": "gen_cola", "method": method, "seed": seed, "metric": METRIC,
            "heads_pruned_total": 3, "heads_pruned_by_layer": PRUNED[method], "heads_per_layer_before": [4, 4],
            "parameters_after": 1000 - 10 * seed, "dev_before": {METRIC: 0.33}, "dev_after": {METRIC: dev},
            "layers": [{f"dev_{METRIC}_after_finetune": 0.30 + seed / 100}, {f"dev_{METRIC}_after_finetune": 0.32}]}


@pytest.fixture
def runs():
    return [comparison.base_run(evaluation(0.33, 0.30)),
            *(comparison.chain_run(evaluation(DEV[method][seed], TEST[method][seed]),
                                   layerwise(method, seed, DEV[method][seed]))
              for method in DEV for seed in range(3))]


def test_mean_and_sample_std():
    assert comparison.mean_std([0.40, 0.36, 0.38]) == pytest.approx((0.38, 0.02))   # ddof 1
    assert comparison.mean_std([0.5]) == (0.5, 0.0)


def test_summary_gives_mean_and_sample_std_per_method_and_split(runs):
    summary = comparison.summarize(runs)
    assert list(summary["gen_cola"]) == ["base", "random", "auber"]                 # the paper's row order
    auber = summary["gen_cola"]["auber"]
    assert auber["seeds"] == 3 and auber["dev_mean"] == pytest.approx(0.38) and auber["dev_std"] == pytest.approx(0.02)
    assert auber["test_mean"] == pytest.approx(0.33) and auber["parameters_mean"] == 990
    assert summary["gen_cola"]["random"]["dev_std"] == pytest.approx(0.04)
    assert "parameters_mean" not in summary["gen_cola"]["base"]


def test_paired_differences_match_seeds(runs):
    # AUBER - random per seed on dev: +0.10, +0.02, +0.12 -> mean 0.08, std sqrt((0.02² + 0.06² + 0.04²) / 2)
    dev = comparison.paired_differences(runs)["gen_cola"]["random"]["dev"]
    assert dev == pytest.approx({"mean": 0.08, "std": (0.0056 / 2) ** 0.5, "seeds": 3})


def test_the_summary_table_is_table_csv(runs):
    table = comparison.summary_table(comparison.summarize(runs))
    expected = pd.DataFrame({
        "task": ["gen_cola"] * 6, "method": ["base", "base", "random", "random", "auber", "auber"],
        "split": ["dev", "test"] * 3, "metric": [METRIC] * 6, "seeds": [1, 1, 3, 3, 3, 3],
        "mean": [0.33, 0.30, 0.30, 0.29, 0.38, 0.33], "std": [0.0, 0.0, 0.04, 0.01, 0.02, 0.02],
        "heads_pruned_mean": [0.0, 0.0, 3.0, 3.0, 3.0, 3.0], "heads_pruned_std": [0.0] * 6,
        "parameters_mean": [None, None, 990.0, 990.0, 990.0, 990.0]})
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert csv_text(table).splitlines()[:2] == [
        "task,method,split,metric,seeds,mean,std,heads_pruned_mean,heads_pruned_std,parameters_mean",
        f"gen_cola,base,dev,{METRIC},1,0.33,0.0,0.0,0.0,"]                          # no parameters: empty cell


def test_the_method_table_is_the_papers_layout(runs):
    summary = comparison.summarize(runs)
    assert markdown_table(comparison.method_table(summary, "dev")).splitlines() == [
        f"| method | gen_cola ({METRIC}) |",
        "|----------|-----------------------------------|",
        "| base | 33.0 (0 heads) |",
        "| random | 30.0 ± 4.0 (3 heads) |",
        "| auber | 38.0 ± 2.0 (3 heads) |"]


def test_curve_and_heatmap_tables_are_the_dvc_plots(runs):
    auber = [run for run in runs if run.method == "auber"]
    assert csv_text(comparison.curve_table(auber)) == (
        "step,dev_score,dev_std\n0,0.33,0.0\n1,0.31,0.01\n2,0.32,0.0\n3,0.38,0.02\n")
    random = [run for run in runs if run.method == "random"]
    assert csv_text(comparison.heatmap_table(random)).splitlines() == [
        "layer,head,seed", "0,3,0", "1,0,0", "1,1,0", "0,3,1", "1,0,1", "1,1,1", "0,3,2", "1,0,2", "1,1,2"]
    assert comparison.pruned_share(random).tolist() == [[0, 0, 0, 1], [1, 1, 0, 0]]


def test_the_report_writes_tables_metrics_plots_figures_and_a_page(runs, tmp_path):
    outputs = comparison.comparison_report(runs, str(tmp_path))
    plots = tmp_path / "plots"
    assert set(outputs) == {str(tmp_path / name) for name in (
        "table.csv", "table.md", "agent.csv", "comparison_metrics.json", "report.html")} | {str(plots / name) for name in (
            "dev_by_layer_gen_cola_auber.csv", "dev_by_layer_gen_cola_random.csv", "heads_gen_cola_auber_heatmap.csv",
            "heads_gen_cola_random_heatmap.csv", "dev_by_layer_gen_cola.png", "dev_by_layer_gen_cola.svg",
            "heads_gen_cola.png", "heads_gen_cola.svg")}
    for kind in ("dev_by_layer", "heads"):
        assert outputs[str(plots / f"{kind}_gen_cola.png")].startswith(b"\x89PNG")
        assert b"<svg" in outputs[str(plots / f"{kind}_gen_cola.svg")]
    markdown = outputs[str(tmp_path / "table.md")]
    assert "- gen_cola: random +8.0 ± 5.3" in markdown.split("## test")[0]
    metrics = outputs[str(tmp_path / "comparison_metrics.json")]
    assert metrics["auber_minus"]["gen_cola"]["random"]["dev"]["mean"] == pytest.approx(0.08)
    page = outputs[str(tmp_path / "report.html")]
    assert page.count("<svg") == 2 and "<table" in page and "38.0 ± 2.0 (3 heads)" in page
    assert "<script" not in page and "src=" not in page                             # self-contained
    # the same inputs give the same bytes (DVC compares contents)
    assert comparison.comparison_report(runs, str(tmp_path)) == outputs


def test_the_stage_writes_every_file_and_refuses_mismatched_inputs(tmp_path):
    def write(name, content):
        (tmp_path / name).write_text(json.dumps(content))
        return str(tmp_path / name)

    base = write("base.json", evaluation(0.33, 0.30))
    evaluations = [write(f"{m}{s}.json", evaluation(DEV[m][s], TEST[m][s])) for m in DEV for s in range(3)]
    layer_reports = [write(f"{m}{s}_layers.json", layerwise(m, s, DEV[m][s])) for m in DEV for s in range(3)]
    out = tmp_path / "comparison"
    compare_methods.main(["--base", base, "--evaluations", *evaluations, "--layerwise", *layer_reports,
                          "--output-dir", str(out)])
    assert (out / "report.html").stat().st_size > 0 and (out / "plots/heads_gen_cola.png").stat().st_size > 0
    assert json.loads((out / "comparison_metrics.json").read_text())["summary"]["gen_cola"]["auber"]["seeds"] == 3
    with pytest.raises(SystemExit):
        compare_methods.main(["--base", base, "--evaluations", *evaluations, "--layerwise", layer_reports[0],
                              "--output-dir", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()
