"""The comparison report from fixture metrics: table, paired differences, plots, heatmaps and the HTML page."""
import csv
import json

import pytest

from workflow_scripts.stages import compare_methods

DEV = {"auber": [0.40, 0.36, 0.38], "random": [0.30, 0.34, 0.26]}
TEST = {"auber": [0.35, 0.33, 0.31], "random": [0.30, 0.28, 0.29]}
PRUNED = {"auber": {"0": [1, 2], "1": [0]}, "random": {"0": [3], "1": [0, 1]}}


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return str(path)


def evaluation(task, dev, test):
    return {"task": task, "headline_metric": "matthews_correlation", "model": "m",
            "validation": {"matthews_correlation": dev, "accuracy": 0.7}, "test": {"matthews_correlation": test}}


def layerwise(method, seed, dev):
    return {"task": "gen_cola", "method": method, "seed": seed, "metric": "matthews_correlation",
            "heads_pruned_total": 3, "heads_pruned_by_layer": PRUNED[method], "heads_per_layer_before": [4, 4],
            "parameters_after": 1000 - 10 * seed, "dev_before": {"matthews_correlation": 0.33},
            "dev_after": {"matthews_correlation": dev},
            "layers": [{"dev_matthews_correlation_after_finetune": 0.30 + seed / 100},
                       {"dev_matthews_correlation_after_finetune": 0.32}]}


@pytest.fixture
def report(tmp_path):
    base = write(tmp_path / "base.json", evaluation("gen_cola", 0.33, 0.30))
    evaluations, layer_reports = [], []
    for method in DEV:
        for seed in range(3):
            evaluations.append(write(tmp_path / f"{method}{seed}/eval.json",
                                     evaluation("gen_cola", DEV[method][seed], TEST[method][seed])))
            layer_reports.append(write(tmp_path / f"{method}{seed}/layers.json", layerwise(method, seed,
                                                                                        DEV[method][seed])))
    out = tmp_path / "comparison"
    compare_methods.main(["--base", base, "--evaluations", *evaluations, "--layerwise", *layer_reports,
                          "--output-dir", str(out)])
    return out


def test_the_table_gives_mean_and_sample_std_over_seeds_per_method_and_split(report):
    table = {(row["method"], row["split"]): row for row in csv.DictReader((report / "table.csv").open())}
    assert float(table[("auber", "dev")]["mean"]) == pytest.approx(0.38)
    assert float(table[("auber", "dev")]["std"]) == pytest.approx(0.02)         # ddof 1
    assert float(table[("random", "test")]["mean"]) == pytest.approx(0.29)
    assert table[("base", "dev")]["seeds"] == "1" and float(table[("base", "dev")]["std"]) == 0
    assert float(table[("random", "dev")]["heads_pruned_mean"]) == 3


def test_the_markdown_orders_rows_like_the_paper_and_reports_paired_gains(report):
    text = (report / "table.md").read_text()
    dev_table = text.split("## dev")[1].split("## test")[0]
    rows = [line.split("|")[1].strip() for line in dev_table.splitlines() if line.startswith("| ")][1:]
    assert rows == ["base", "random", "auber"]
    assert "| auber | 38.0 ± 2.0 (3 heads) |" in dev_table
    assert "| base | 33.0 (0 heads) |" in dev_table
    # AUBER - random per seed: +10, +2, +12 points -> mean +8.0, std 5.3
    assert "- gen_cola: random +8.0 ± 5.3" in dev_table
    metrics = json.loads((report / "comparison_metrics.json").read_text())
    assert metrics["auber_minus"]["gen_cola"]["random"]["dev"]["mean"] == pytest.approx(0.08)
    assert metrics["summary"]["gen_cola"]["auber"]["test_mean"] == pytest.approx(0.33)


def test_plots_average_the_per_layer_curves_and_heatmaps_list_every_pruned_head(report):
    curve = list(csv.DictReader((report / "plots/dev_by_layer_gen_cola_auber.csv").open()))
    assert [row["step"] for row in curve] == ["0", "1", "2", "3"]
    assert float(curve[1]["dev_score"]) == pytest.approx(0.31)                  # 0.30, 0.31, 0.32
    assert float(curve[3]["dev_score"]) == pytest.approx(0.38)                  # the final fine-tune
    heat = list(csv.DictReader((report / "plots/heads_gen_cola_random_heatmap.csv").open()))
    assert len(heat) == 3 * 3 and {(r["layer"], r["head"]) for r in heat} == {("0", "3"), ("1", "0"), ("1", "1")}


def test_the_html_page_is_self_contained_with_tables_curves_and_heatmaps(report):
    page = (report / "report.html").read_text()
    assert "<svg" in page and page.count("<polyline") == 2 and "class='heat'" in page
    assert "38.0 ± 2.0 (3 heads)" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched


def test_mismatched_inputs_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        compare_methods.main(["--base", "b", "--evaluations", "e1", "e2", "--layerwise", "l1",
                              "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
