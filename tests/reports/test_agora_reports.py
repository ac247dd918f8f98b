"""Agora's reports: the rounds' DVC plots and figure from a round table, and the comparison with the plain
fine-tune (table, markdown, page, DVC metrics) from fixture run folders, through the stage's command line."""
import json

import pandas as pd
import pytest

from workflow_scripts.reports import agora
from workflow_scripts.stages import agora_report

ROUNDS = pd.DataFrame({"round": [0, 1], "replay_round": [0, 0], "train_size": [800, 1023], "sets": [3, 1],
                       "best_set": ["lr1", "lr1"], "selection_score": [0.22, 0.34], "dev_score": [0.30, 0.28],
                       "added": [223, 0]})


def test_rounds_give_the_two_plots_and_a_figure(tmp_path):
    paths = [str(tmp_path / name) for name in ("dev.csv", "size.csv", "rounds.png", "rounds.svg")]
    outputs = agora.rounds_report(ROUNDS, "gen_mrpc", "accuracy", paths[0], paths[1], paths[2:])
    assert outputs[paths[0]] == ("round,replay_round,train_size,sets,best_set,selection_score,dev_score\n"
                                 "0,0,800,3,lr1,0.22,0.3\n1,0,1023,1,lr1,0.34,0.28\n")
    assert outputs[paths[1]] == "round,train_size,added\n0,800,223\n1,1023,0\n"
    assert outputs[paths[2]].startswith(b"\x89PNG") and b"<svg" in outputs[paths[3]]


@pytest.fixture
def runs(tmp_path):
    """Two tasks' Agora and plain folders with their evaluations, as the four lists the stage reads."""
    lists = {"agora": [], "plain": [], "agora_metrics": [], "plain_metrics": []}
    for index, task in enumerate(["gen_mrpc", "gen_cola"]):
        agora_folder, plain_folder = tmp_path / task / "agora", tmp_path / task / "plain"
        agora_folder.mkdir(parents=True)
        plain_folder.mkdir()
        (agora_folder / "agora.json").write_text(json.dumps({
            "task": task, "seconds": 81.4 + index, "points_added": 223, "rounds": [{}, {}],
            "train_size": {"initial": 800, "final": 1023}, "training_examples": 20538, "best_set": "lr1"}))
        (plain_folder / "plain.json").write_text(json.dumps({"seconds": 80.6, "training_examples": 20800,
                                                             "set": "lr2"}))
        for name, value in (("agora_metrics", 0.75 + index / 10), ("plain_metrics", 0.7)):
            path = tmp_path / task / f"{name}.json"
            path.write_text(json.dumps({"task": task, "model": "m", "headline_metric": "accuracy",
                                        "validation": {"accuracy": value, "f1": 0.1}, "test": {"accuracy": 0.5}}))
            lists[name].append(str(path))
        lists["agora"].append(str(agora_folder))
        lists["plain"].append(str(plain_folder))
    return lists


def test_the_comparison_equals_the_hand_written_table(runs):
    table = agora.comparison_table(runs["agora"], runs["plain"], runs["agora_metrics"], runs["plain_metrics"])
    outputs = agora.comparison_report(table, "c.md", "c.html", "c.json")
    assert outputs["c.md"].splitlines()[4:] == [
        "| task | metric | Agora | plain | rounds | points added | train size | Agora time (s) | plain time (s) "
        "| training examples (Agora / plain) | Agora's best set | plain's set |",
        "|----------|----------|---------|---------|----------|----------------|--------------|------------------|"
        "------------------|-------------------------------------|--------------------|---------------|",
        "| gen_mrpc | accuracy | 0.7500 | 0.7000 | 2 | 223 | 800 -> 1023 | 81 | 81 | 20538 / 20800 | lr1 | lr2 |",
        "| gen_cola | accuracy | 0.8500 | 0.7000 | 2 | 223 | 800 -> 1023 | 82 | 81 | 20538 / 20800 | lr1 | lr2 |"]
    assert outputs["c.json"] == {"gen_mrpc": {"agora": 0.75, "plain": 0.7, "points_added": 223, "rounds": 2},
                                 "gen_cola": {"agora": 0.85, "plain": 0.7, "points_added": 223, "rounds": 2}}
    assert json.dumps(outputs["c.json"])                                       # plain Python numbers
    assert "<table" in outputs["c.html"] and "0.8500" in outputs["c.html"]


def test_the_compare_stage_writes_markdown_page_and_metrics(runs, tmp_path):
    out = tmp_path / "out"
    agora_report.main(["compare", "--agora", *runs["agora"], "--plain", *runs["plain"],
                       "--agora-metrics", *runs["agora_metrics"], "--plain-metrics", *runs["plain_metrics"],
                       "--output", str(out / "c.md"), "--output-html", str(out / "c.html"),
                       "--metrics-output", str(out / "c.json")])
    assert json.loads((out / "c.json").read_text())["gen_cola"]["agora"] == 0.85
    assert "| gen_mrpc |" in (out / "c.md").read_text() and (out / "c.html").stat().st_size > 0
    with pytest.raises(SystemExit):
        agora_report.main(["compare", "--agora", *runs["agora"], "--plain", runs["plain"][0],
                           "--agora-metrics", *runs["agora_metrics"], "--plain-metrics", *runs["plain_metrics"],
                           "--output", "x.md", "--output-html", "x.html", "--metrics-output", "x.json"])
    with pytest.raises(SystemExit):
        agora_report.main(["summary"])                                           # not a mode
