"""Agora's reports: the rounds' DVC plots and figure from a round table, and the comparison with the plain
fine-tune over seeds (mean ± std of each, the paired difference, per-seed rows; markdown, CSVs, page, DVC metrics)
from hand-made run folders with hand-computed statistics, through the stage's command line."""
import json

import pandas as pd
import pytest

from workflow_scripts.reports import agora
from workflow_scripts.stages import agora_report

ROUNDS = pd.DataFrame({"round": [0, 1], "replay_round": [0, 0], "train_size": [800, 1023], "sets": [3, 1],
                       "best_set": ["lr1", "lr1"], "selection_score": [0.22, 0.34], "pick_score": [0.25, 0.21],
                       "dev_score": [0.30, 0.28], "added": [223, 0]})


def test_rounds_give_the_two_plots_and_a_figure(tmp_path):
    paths = [str(tmp_path / name) for name in ("dev.csv", "size.csv", "rounds.png", "rounds.svg")]
    outputs = agora.rounds_report(ROUNDS, "gen_mrpc", "accuracy", paths[0], paths[1], paths[2:])
    assert outputs[paths[0]] == ("round,replay_round,train_size,sets,best_set,selection_score,pick_score,dev_score\n"
                                 "0,0,800,3,lr1,0.22,0.25,0.3\n1,0,1023,1,lr1,0.34,0.21,0.28\n")
    assert outputs[paths[1]] == "round,train_size,added\n0,800,223\n1,1023,0\n"
    assert outputs[paths[2]].startswith(b"\x89PNG") and b"<svg" in outputs[paths[3]]


# Hand-made scores: gen_mrpc over three seeds with a labelled test split, gen_cola over two seeds with dev only.
SCORES = {("gen_mrpc", 0): {"agora": (0.70, 0.5), "plain": (0.72, 0.5)},
          ("gen_mrpc", 1): {"agora": (0.80, 0.6), "plain": (0.74, 0.5)},
          ("gen_mrpc", 2): {"agora": (0.75, 0.7), "plain": (0.70, 0.5)},
          ("gen_cola", 0): {"agora": (0.30, None), "plain": (0.20, None)},
          ("gen_cola", 1): {"agora": (0.25, None), "plain": (0.35, None)}}


def write_run(folder, task: str, seed: int, plain_seed: int | None = None) -> dict[str, str]:
    """One task and seed's Agora and plain folders and evaluations; the four paths the stage reads."""
    folder.mkdir(parents=True)
    (folder / "agora").mkdir()
    (folder / "plain").mkdir()
    (folder / "agora" / "agora.json").write_text(json.dumps({
        "task": task, "seed": seed, "seconds": 81.4 + seed, "points_added": 223, "rounds": [{}, {}],
        "returned_round": 1, "returned_set": "lr1", "returned_pick_score": 0.31,
        "train_size": {"initial": 600, "final": 823}, "training_examples": 20538}))
    (folder / "plain" / "plain.json").write_text(json.dumps({
        "task": task, "seed": seed if plain_seed is None else plain_seed, "seconds": 80.6,
        "training_examples": 20800, "set": "lr2", "best_pick_score": 0.29}))
    paths = {"agora": str(folder / "agora"), "plain": str(folder / "plain")}
    metric = "accuracy" if task == "gen_mrpc" else "matthews_correlation"
    for method in ("agora", "plain"):
        dev, test = SCORES[task, seed][method]
        evaluation = {"task": task, "model": "m", "headline_metric": metric, "validation": {metric: dev, "f1": 0.1}}
        if test is not None:
            evaluation["test"] = {metric: test}
        path = folder / f"{method}_metrics.json"
        path.write_text(json.dumps(evaluation))
        paths[f"{method}_metrics"] = str(path)
    return paths


@pytest.fixture
def runs(tmp_path):
    """Every task and seed of SCORES, as the four lists the stage reads (tasks outer, seeds inner)."""
    lists = {"agora": [], "plain": [], "agora_metrics": [], "plain_metrics": []}
    for task, seed in SCORES:
        for name, path in write_run(tmp_path / task / f"seed_{seed}", task, seed).items():
            lists[name].append(path)
    return lists


def comparison(runs) -> dict:
    seeds = agora.seed_table(runs["agora"], runs["plain"], runs["agora_metrics"], runs["plain_metrics"])
    return agora.comparison_report(seeds, "c.md", "c.csv", "s.csv", "c.html", "c.json")


def test_means_stds_and_paired_differences_equal_the_hand_computed_ones(runs):
    metrics = comparison(runs)["c.json"]
    dev = metrics["gen_mrpc"]["dev"]
    assert dev["seeds"] == 3
    assert dev["agora_mean"] == pytest.approx(0.75) and dev["agora_std"] == pytest.approx(0.05)
    assert dev["plain_mean"] == pytest.approx(0.72) and dev["plain_std"] == pytest.approx(0.02)
    # differences -0.02, 0.06, 0.05: the std of the paired differences, not of the two means
    assert dev["difference_mean"] == pytest.approx(0.03)
    assert dev["difference_std"] == pytest.approx(0.0019 ** 0.5)
    test = metrics["gen_mrpc"]["test"]
    assert test["agora_mean"] == pytest.approx(0.6) and test["agora_std"] == pytest.approx(0.1)
    assert test["plain_std"] == 0.0 and test["difference_mean"] == pytest.approx(0.1)
    cola = metrics["gen_cola"]
    assert set(cola) == {"dev"}                                                 # no labelled test split: no row
    assert cola["dev"]["difference_mean"] == pytest.approx(0.0)
    assert cola["dev"]["difference_std"] == pytest.approx(((0.1 ** 2 + 0.1 ** 2) / 1) ** 0.5)
    assert json.dumps(metrics)                                                  # plain Python numbers


def test_the_tables_give_means_over_seeds_and_one_row_per_seed(runs):
    outputs = comparison(runs)
    markdown = outputs["c.md"]
    assert "| gen_mrpc | accuracy | dev | 3 | 0.7500 ± 0.0500 | 0.7200 ± 0.0200 | 0.0300 ± 0.0436 |" in markdown
    assert "| gen_mrpc | accuracy | test | 3 | 0.6000 ± 0.1000 | 0.5000 ± 0.0000 | 0.1000 ± 0.1000 |" in markdown
    assert "| gen_cola | matthews_correlation | dev | 2 | 0.2750 ± 0.0354 | 0.2750 ± 0.1061 | 0.0000 ± 0.1414 |" \
        in markdown
    assert ("| gen_mrpc | 1 | dev | 0.8000 | 0.7400 | +0.0600 | 1 of 2 | 223 | 600 -> 823 | 0.3100 / 0.2900 "
            "| 82 / 81 | 20538 / 20800 | lr1 | lr2 |") in markdown
    summary_csv = outputs["c.csv"].splitlines()
    assert summary_csv[0] == ("task,metric,split,seeds,agora_mean,agora_std,plain_mean,plain_std,difference_mean,"
                              "difference_std")
    assert [line.split(",")[:4] for line in summary_csv[1:]] == [
        ["gen_mrpc", "accuracy", "dev", "3"], ["gen_mrpc", "accuracy", "test", "3"],
        ["gen_cola", "matthews_correlation", "dev", "2"]]
    seed_rows = outputs["s.csv"].splitlines()
    assert len(seed_rows) == 1 + 3 * 2 + 2                                      # mrpc: dev and test; cola: dev
    assert seed_rows[1].startswith("gen_mrpc,0,accuracy,dev,0.7,0.72,")
    assert "<table" in outputs["c.html"] and "0.7500 ± 0.0500" in outputs["c.html"]


def test_a_plain_run_of_another_seed_is_refused(tmp_path):
    paths = write_run(tmp_path / "run", "gen_mrpc", 0, plain_seed=1)
    with pytest.raises(ValueError, match="not one task and seed"):
        agora.seed_table([paths["agora"]], [paths["plain"]], [paths["agora_metrics"]], [paths["plain_metrics"]])


def test_the_compare_stage_writes_markdown_csvs_page_and_metrics(runs, tmp_path):
    out = tmp_path / "out"
    outputs = ["--output", str(out / "c.md"), "--output-csv", str(out / "c.csv"),
               "--output-seeds-csv", str(out / "s.csv"), "--output-html", str(out / "c.html"),
               "--metrics-output", str(out / "c.json")]
    agora_report.main(["compare", "--agora", *runs["agora"], "--plain", *runs["plain"],
                       "--agora-metrics", *runs["agora_metrics"], "--plain-metrics", *runs["plain_metrics"],
                       *outputs])
    assert json.loads((out / "c.json").read_text())["gen_mrpc"]["dev"]["agora_mean"] == pytest.approx(0.75)
    assert "| gen_mrpc |" in (out / "c.md").read_text() and (out / "c.html").stat().st_size > 0
    assert (out / "s.csv").read_text().count("\n") == 1 + 8
    with pytest.raises(SystemExit):
        agora_report.main(["compare", "--agora", *runs["agora"], "--plain", runs["plain"][0],
                           "--agora-metrics", *runs["agora_metrics"], "--plain-metrics", *runs["plain_metrics"],
                           *outputs])
    with pytest.raises(SystemExit):
        agora_report.main(["summary"])                                           # not a mode
