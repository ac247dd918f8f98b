"""Bort's reports: the FPTAS selection (W on fixed numbers, Table 1 against a hand-written one, the scatter, the
page) and distillation against MLM-only pretraining (targets, steps to reach them, the table, the curves)."""
import pytest

from workflow_scripts.reports import bort
from workflow_scripts.reports.bort import SelectionConfig
from workflow_scripts.reports.render import csv_text, markdown_table


def measured(tag, parameters_millions, latency_ms, error, role="candidate", shape=(1, 2, 16, 32)):
    depth, heads, hidden, intermediate = shape
    return {"tag": tag, "role": role, "depth": depth, "heads": heads, "hidden": hidden, "intermediate": intermediate,
            "parameters": int(parameters_millions * 1e6), "latency_s": latency_ms / 1e3,
            "flops": int(parameters_millions * 1e7), "surrogate_error": error, "mlm_accuracy": 0.1}


@pytest.fixture
def selection():
    teacher = measured("teacher", 100, 4.0, 1.0, role="teacher", shape=(2, 2, 32, 64))
    candidates = [measured("a", 80, 3.0, 1.0), measured("b", 20, 1.0, 4.0), measured("c", 50, 2.0, 2.0),
                  measured("d", 90, 3.9, 1.0)]
    reference = measured("ref", 10, 0.5, 1.0, role="reference", shape=(1, 2, 16, 16))
    return bort.select(teacher, candidates, [reference], "latency")


def test_w_ranks_candidates_and_never_chooses_a_reference(selection):
    # W = (1 - p/p_T) (1 - i/i_T) / e: b 0.8 * 0.75 / 4 = 0.15, c 0.125, a 0.05, d 0.0025; ref 0.7875 is not eligible
    assert [row["tag"] for row in selection["ranked"]] == ["b", "c", "a", "d"]
    assert selection["chosen"]["tag"] == "b" and selection["chosen"]["w_coefficient"] == pytest.approx(0.15)
    assert selection["references"][0]["w_coefficient"] == pytest.approx(0.7875)


def test_table_one_equals_the_hand_written_one(selection):
    table = bort.selection_table(selection)
    assert csv_text(table).splitlines() == [
        "rank,architecture,depth,heads,hidden,intermediate,w_coefficient,parameters_millions,latency_ms,mflops,"
        "surrogate_error,mlm_accuracy",
        "1,b,1,2,16,32,0.15,20.0,1.0,200.0,4.0,0.1",
        "2,c,1,2,16,32,0.125,50.0,2.0,500.0,2.0,0.1",
        "3,a,1,2,16,32,0.05,80.0,3.0,800.0,1.0,0.1",
        "reference,ref,1,2,16,16,0.7875,10.0,0.5,100.0,1.0,0.1",
        "T,teacher,2,2,32,64,0.0,100.0,4.0,1000.0,1.0,0.1"]
    assert markdown_table(bort.selection_display(table)).splitlines()[2:] == [
        "| 1 | <1, 2, 16, 32> | 0.150 | 20.00 | 1.00 | 200.0 | 4.000 | 0.100 |",
        "| 2 | <1, 2, 16, 32> | 0.125 | 50.00 | 2.00 | 500.0 | 2.000 | 0.100 |",
        "| 3 | <1, 2, 16, 32> | 0.050 | 80.00 | 3.00 | 800.0 | 1.000 | 0.100 |",
        "| reference | <1, 2, 16, 16> | 0.787 | 10.00 | 0.50 | 100.0 | 1.000 | 0.100 |",
        "| T | <2, 2, 32, 64> | 0.000 | 100.00 | 4.00 | 1000.0 | 1.000 | 0.100 |"]


def test_the_selection_report_writes_tables_scatter_figures_and_the_choice(selection, tmp_path):
    config = SelectionConfig(inference_cost="latency", epsilon=1, representative="first", valid=4, skipped=0)
    outputs = bort.selection_report(selection, config, str(tmp_path))
    assert set(outputs) == {str(tmp_path / name) for name in (
        "table.csv", "table.md", "table.html", "candidates_scatter.csv", "candidates.png", "candidates.svg",
        "selection.json")}
    scatter = outputs[str(tmp_path / "candidates_scatter.csv")].splitlines()
    assert scatter[0].endswith(",role") and [line.split(",")[-1] for line in scatter[1:]] == ["candidate"] * 4 + [
        "reference"]
    assert outputs[str(tmp_path / "candidates.png")].startswith(b"\x89PNG")
    assert b"<svg" in outputs[str(tmp_path / "candidates.svg")]
    assert "<table" in outputs[str(tmp_path / "table.html")] and "<svg" in outputs[str(tmp_path / "table.html")]
    choice = outputs[str(tmp_path / "selection.json")]
    assert choice["chosen"]["tag"] == "b" and choice["valid_architectures"] == 4 and choice["trained_candidates"] == 4
    assert outputs[str(tmp_path / "table.md")].startswith("W-coefficient with inference cost = latency;")
    # errors 1, 4, 2, 1: the reference's 1.0 is not a candidate's
    assert choice["surrogate_error_spread"] == {"min": 1.0, "max": 4.0, "median": 1.5, "std": pytest.approx(1.2247449),
                                                "relative_range": 3.0}
    assert "1.000 to 4.000 (median 1.500, std 1.225; the largest is 300.0% above" in outputs[str(tmp_path / "table.md")]


KD = [{"step": 10, "mlm_accuracy": 0.1, "mlm_loss": 6.5}, {"step": 20, "mlm_accuracy": 0.3, "mlm_loss": 5.0},
      {"step": 30, "mlm_accuracy": 0.35, "mlm_loss": 4.0}]
MLM = [{"step": 10, "mlm_accuracy": 0.05, "mlm_loss": 7.0}, {"step": 20, "mlm_accuracy": 0.2, "mlm_loss": 6.0},
       {"step": 30, "mlm_accuracy": 0.3, "mlm_loss": 5.5}]


def test_distillation_reaches_mlm_onlys_final_scores_in_fewer_steps():
    summary = bort.compare({"kd": KD, "mlm": MLM})
    assert summary["target_mlm_accuracy"] == 0.3 and summary["target_mlm_loss"] == 5.5
    objectives = summary["objectives"]
    assert objectives["kd"]["steps_to_target"] == 20 and objectives["mlm"]["steps_to_target"] == 30
    assert summary["kd_steps_fraction_of_mlm"] == pytest.approx(2 / 3)
    assert bort.steps_to_reach(MLM, 0.9) is None
    assert markdown_table(bort.pretraining_table(summary)).splitlines()[2:] == [
        "| kd | 30 | 0.3500 | 4.0000 | 20 | 20 |",
        "| mlm | 30 | 0.3000 | 5.5000 | 30 | 30 |"]


def test_the_pretraining_report_reads_curves_and_writes_markdown_page_figures_and_metrics(tmp_path):
    for objective, points in (("kd", KD), ("mlm", MLM)):
        (tmp_path / f"{objective}_curve.csv").write_text("objective,step,mlm_accuracy,mlm_loss,train_loss\n" + "".join(
            f"{objective},{p['step']},{p['mlm_accuracy']},{p['mlm_loss']},1.0\n" for p in points))
    curves = dict(bort.read_curve(str(tmp_path / f"{objective}_curve.csv")) for objective in ("kd", "mlm"))
    paths = [str(tmp_path / name) for name in ("c.md", "c.html", "c.json", "curves.png", "curves.svg")]
    outputs = bort.pretraining_report(curves, "D1_A2_H16_I32", *paths[:3], paths[3:])
    assert outputs[paths[2]] == bort.compare({"kd": KD, "mlm": MLM})
    markdown = outputs[paths[0]]
    assert markdown.startswith("Pretraining of D1_A2_H16_I32: held-out masked-LM accuracy and loss")
    assert markdown.endswith("\nDistillation reaches MLM-only's final accuracy in 0.67x its steps.\n\n"
                             "Distillation reaches MLM-only's final loss in 0.67x its steps.\n")
    assert "<table" in outputs[paths[1]] and "<svg" in outputs[paths[1]]
    assert outputs[paths[3]].startswith(b"\x89PNG") and b"<svg" in outputs[paths[4]]


def test_equal_wall_time_compares_each_objective_at_the_shorter_runs_training_time_and_baselines_are_named():
    kd = [{**point, "train_seconds": 0.13 * point["step"]} for point in KD]
    mlm = [{**point, "train_seconds": 0.1 * point["step"]} for point in MLM]
    teacher = {"heldout": {"mlm_accuracy": 0.45}, "most_frequent_token_rate": 0.1}
    summary = bort.compare({"kd": kd, "mlm": mlm}, teacher)
    assert summary["kd_step_cost_ratio"] == pytest.approx(1.3)
    assert summary["equal_time_seconds"] == 3.0  # MLM-only's whole run
    objectives = summary["objectives"]
    # within 3 s KD has reached step 20 (2.6 s), MLM-only step 30
    assert objectives["kd"]["step_at_equal_time"] == 20 and objectives["kd"]["mlm_accuracy_at_equal_time"] == 0.3
    assert objectives["mlm"]["step_at_equal_time"] == 30 and objectives["mlm"]["mlm_accuracy_at_equal_time"] == 0.3
    assert objectives["kd"]["accuracy_over_most_frequent_token_rate"] == pytest.approx(3.5)
    before, after = bort.pretraining_notes(summary, "D1_A2_H16_I32")
    assert "most frequent token scores 0.1000; the teacher T scores 0.4500" in before[-1]
    assert after[-1].startswith("A distillation step costs 1.30x an MLM-only step")
    assert markdown_table(bort.pretraining_table(summary)).splitlines()[2] == (
        "| kd | 30 | 0.3500 | 4.0000 | 20 | 20 | 0.130 | 0.3000 | 20 |")
