"""Tasks of your own through the real snakemake, in a temporary git + DVC repository on the tiny configuration: a
CSV file (one text column, text labels, seeded dev/test shares) and a folder of parquet splits (sentence pairs),
defined only in `tasks` (no per_task entries), prepared, tokenized, fine-tuned and evaluated; DVC records them."""
import json
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO_ROOT
from workflow_repo import jobs_run_by_snakemake, make_workflow_repo, run

pytestmark = pytest.mark.e2e
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]
REVIEWS = {"name": "reviews", "data": "my_data/reviews.csv", "text_columns": ["review"], "label_column": "verdict",
           "metrics": ["accuracy", "f1"]}
PAIRS = {"name": "pairs", "data": "my_data/pairs", "text_columns": ["question", "answer"], "label_column": "label",
         "metrics": ["accuracy"], "splits": {"train": "train", "dev": "validation", "test": "test"}}
TARGETS = [f"models/{task}/base/evaluate/metrics.json" for task in ("reviews", "pairs")]


def write_data(repo):
    (repo / "my_data/pairs").mkdir(parents=True)
    reviews = pd.DataFrame({"review": [f"the film was {'good' if i % 2 else 'dull'} number {i}" for i in range(60)],
                            "verdict": ["pos" if i % 2 else "neg" for i in range(60)]})
    reviews.to_csv(repo / REVIEWS["data"], index=False)
    pairs = pd.DataFrame({"question": [f"is {i} even" for i in range(60)],
                          "answer": ["yes" if i % 3 else "no" for i in range(60)],
                          "label": [int((i % 2 == 0) == (i % 3 > 0)) for i in range(60)]})
    for split, rows in (("train", pairs[:40]), ("validation", pairs[40:50]), ("test", pairs[50:])):
        rows.to_parquet(repo / f"my_data/pairs/{split}-00000-of-00001.parquet", index=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(repository, the jobs snakemake ran) after building both tasks' evaluations, and nothing else."""
    root = tmp_path_factory.mktemp("custom_task")
    params = yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text())
    params["tasks"] = [REVIEWS, PAIRS]
    params["head_pruning"].update(tasks=[], first_seed_tasks=[])
    for section in ("agora", "dap", "unstructured_pruning", "tinybert"):
        params[section]["tasks"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repo = root / "repo"
    repo.mkdir()
    write_data(repo)   # before dvc.yaml is generated: prepare_task's input
    make_workflow_repo(repo, root / "params.yaml")
    result = run(SNAKEMAKE + TARGETS, repo)
    return repo, jobs_run_by_snakemake(result.stdout + result.stderr)


def test_both_tasks_are_prepared_like_built_in_ones_and_evaluated(built):
    repo, jobs = built
    assert sorted(jobs) == sorted(["fetch_model", *["prepare_task", "tokenize_task", "finetune_initial",
                                                    "evaluate"] * 2])
    reviews = json.loads((repo / "data/reviews/raw/task.json").read_text())
    assert reviews == {"name": "reviews", "source": "custom", "text_columns": ["sentence"], "num_labels": 2,
                       "metrics": ["accuracy", "f1"], "generator_kind": None, "glue_config": None,
                       "dev_split": "validation", "split_sizes": {"train": 48, "validation": 6, "test": 6},
                       "label_names": ["neg", "pos"], "source_columns": {"sentence": "review", "label": "verdict"}}
    pairs = json.loads((repo / "data/pairs/raw/task.json").read_text())
    assert pairs["text_columns"] == ["sentence1", "sentence2"] and pairs["label_names"] == [0, 1]
    assert pairs["split_sizes"] == {"train": 40, "validation": 10, "test": 10}
    first = json.loads((repo / "data/pairs/raw/validation.jsonl").read_text().splitlines()[0])
    assert first == {"sentence1": "is 40 even", "sentence2": "yes", "label": 1, "idx": 0}
    for target, dev_size in zip(TARGETS, (6, 10)):
        metrics = json.loads((repo / target).read_text())
        assert metrics["validation"]["num_examples"] == dev_size and "accuracy" in metrics["test"]
    assert "f1" in json.loads((repo / TARGETS[0]).read_text())["validation"]


def test_dvc_tracks_the_definition_and_the_data_and_a_data_change_reruns_only_that_task(built):
    repo, _ = built
    stage = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["prepare_task-reviews"]
    assert "my_data/reviews.csv" in stage["deps"] and "workflow_scripts/data/custom_tasks.py" in stage["deps"]
    assert stage["params"] == ["seed", "tasks.0"]
    assert {"prepare_task-reviews", "finetune_initial-pairs"} <= set(yaml.safe_load((repo / "dvc.lock").read_text())[
        "stages"])   # dvc commit read the keys (tasks.0, finetune_initial.per_task) from params.yaml
    with open(repo / REVIEWS["data"], "a") as handle:
        handle.write("a late review,pos\n")
    dry_run = run(SNAKEMAKE + ["--dry-run", *TARGETS], repo).stdout
    # the reviews' chain only: the pairs' jobs (same params, same code) stay done
    assert jobs_run_by_snakemake(dry_run) == sorted(["prepare_task", "tokenize_task", "finetune_initial", "evaluate"])
    assert "data/reviews/raw" in dry_run and "data/pairs/raw" not in dry_run
