"""Tasks of your own (data/custom_tasks.py): every file type and layout read to the same GLUE-schema rows, seeded
dev/test shares, label mapping, a hub dataset (monkeypatched: no network), and one clear error per data problem."""
import json

import pandas as pd
import pytest

from workflow_scripts.data.custom_tasks import CustomTaskError, build_custom_task, seeded_shares
from workflow_scripts.stages import prepare_task

STARS = ["one", "two", "three"]


def table(rows: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"review": [f"review number {i}" for i in range(rows)],
                         "title": [f"title {i}" for i in range(rows)],
                         "stars": [STARS[i % 3] for i in range(rows)]})


def write(frame: pd.DataFrame, path):
    """frame as a .csv, .tsv, .jsonl or .parquet file, by the path's suffix."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def definition(data, **overrides) -> dict:
    """A definition as pipeline/params.py hands it to prepare_task (defaults filled in)."""
    return {"name": "reviews", "data": str(data), "text_columns": ["review"], "label_column": "stars",
            "labels": None, "metrics": ["accuracy"], "splits": {"train": "train", "dev": None, "test": None},
            "dev_fraction": 0.1, "test_fraction": 0.1, **overrides}


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_file_type_gives_the_same_glue_schema_rows(tmp_path, suffix):
    rows, spec, details = build_custom_task(definition(write(table(), tmp_path / f"reviews{suffix}")), seed=0)
    reference, _, _ = build_custom_task(definition(write(table(), tmp_path / "reference.csv")), seed=0)
    assert rows == reference
    assert {split: len(split_rows) for split, split_rows in rows.items()} == {"train": 48, "validation": 6, "test": 6}
    for split_rows in rows.values():
        assert [row["idx"] for row in split_rows] == list(range(len(split_rows)))
        for row in split_rows:   # each row keeps its text and its label, as a class id of the sorted labels
            assert set(row) == {"sentence", "label", "idx"}
            assert details["label_names"][row["label"]] == STARS[int(row["sentence"].split()[-1]) % 3]
    assert spec.text_columns == ("sentence",) and spec.num_labels == 3 and spec.metrics == ("accuracy",)
    assert spec.source == "custom" and spec.dev_split == "validation"
    assert details == {"label_names": ["one", "three", "two"],
                       "source_columns": {"sentence": "review", "label": "stars"}}


def test_seeded_shares_are_deterministic_disjoint_and_sized():
    shares = seeded_shares(103, {"validation": 0.1, "test": 0.25}, seed=3)
    assert [len(shares[name]) for name in ("validation", "test", "train")] == [10, 26, 67]
    assert sorted(i for share in shares.values() for i in share) == list(range(103))   # disjoint, nothing lost
    assert all(share == sorted(share) for share in shares.values())                   # source order kept
    assert seeded_shares(103, {"validation": 0.1, "test": 0.25}, seed=3) == shares
    assert seeded_shares(103, {"validation": 0.1, "test": 0.25}, seed=4) != shares


def test_a_folder_of_splits_and_shards_with_a_sentence_pair_and_declared_labels(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    frame = table()
    write(frame[:20], folder / "train-00000-of-00002.parquet")
    write(frame[20:40], folder / "train-00001-of-00002.parquet")
    write(frame[40:50], folder / "validation.csv")
    write(frame[50:], folder / "test.jsonl")
    (folder / "README.md").write_text("not data")
    rows, spec, details = build_custom_task(definition(
        folder, text_columns=["title", "review"], labels=["three", "two", "one"],
        splits={"train": "train", "dev": "validation", "test": "test"}), seed=0)
    assert [len(rows[split]) for split in ("train", "validation", "test")] == [40, 10, 10]
    assert rows["train"][21] == {"sentence1": "title 21", "sentence2": "review number 21", "label": 2, "idx": 21}
    assert rows["validation"][0]["sentence2"] == "review number 40" and rows["validation"][0]["idx"] == 0
    assert spec.text_columns == ("sentence1", "sentence2") and details["label_names"] == ["three", "two", "one"]


def test_a_test_split_of_its_own_and_a_dev_share_of_train(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    write(table(40), folder / "train.csv")
    write(table(12), folder / "test.csv")
    rows, _, _ = build_custom_task(definition(folder, splits={"train": "train", "dev": None, "test": "test"},
                                              dev_fraction=0.25), seed=0)
    assert [len(rows[split]) for split in ("train", "validation", "test")] == [30, 10, 12]


def test_regression_labels_are_numbers_and_integer_classes_keep_their_order(tmp_path):
    frame = table().assign(score=[i / 10 for i in range(60)], grade=[(i % 2) * 5 for i in range(60)])
    path = write(frame, tmp_path / "scores.csv")
    rows, spec, details = build_custom_task(definition(path, label_column="score", metrics=["pearson", "spearman"]),
                                            seed=0)
    assert spec.num_labels == 1 and details["label_names"] is None
    assert all(isinstance(row["label"], float) for row in rows["train"])
    rows, spec, details = build_custom_task(definition(path, label_column="grade", metrics=["f1", "accuracy"]), seed=0)
    assert details["label_names"] == [0, 5] and {row["label"] for row in rows["train"]} == {0, 1}


def test_a_hub_dataset_is_loaded_by_id_and_config(monkeypatch):
    import datasets

    calls = []

    def load_dataset(dataset_id, config):
        calls.append((dataset_id, config))
        frame = table()
        return datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame[:50], preserve_index=False),
                                     "validation": datasets.Dataset.from_pandas(frame[50:], preserve_index=False)})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    hub_definition = {**definition(None, splits={"train": "train", "dev": "validation", "test": None}),
                      "hub": {"id": "user/reviews", "config": "plain"}}
    del hub_definition["data"]
    rows, _, _ = build_custom_task(hub_definition, seed=0)
    assert calls == [("user/reviews", "plain")]
    assert [len(rows[split]) for split in ("train", "validation", "test")] == [45, 10, 5]


def test_a_hub_dataset_offline_says_what_to_do(monkeypatch):
    import datasets

    def offline(dataset_id, config):
        raise ConnectionError("Couldn't reach the hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    hub_definition = {**definition(None), "hub": {"id": "user/reviews", "config": None}}
    del hub_definition["data"]
    with pytest.raises(CustomTaskError, match=r"hub dataset user/reviews: Couldn't reach.*hf download --repo-type "
                                              r"dataset user/reviews --local-dir DIR.*`data`"):
        build_custom_task(hub_definition, seed=0)


def folder_with(tmp_path, **frames):
    """A folder of <split>.csv files (a name with a dash, train-1, is a shard)."""
    folder = tmp_path / "splits"
    folder.mkdir()
    for split, frame in frames.items():
        write(frame, folder / f"{split.replace('_', '-')}.csv")
    return folder


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: definition(write(table(), tmp / "r.csv"), label_column="rating"),
     r"r\.csv: no column 'rating' \(its columns: review, title, stars\)"),
    (lambda tmp: definition(folder_with(tmp, train=table(), validation=table().assign(stars="four")),
                            splits={"train": "train", "dev": "validation", "test": None}),
     r"validation\.csv, row 1: unknown label 'four' \(the task's labels: 'one', 'three', 'two'\)"),
    (lambda tmp: definition(write(table(), tmp / "r.csv"), labels=["one", "two"]),
     r"r\.csv, row \d+: unknown label 'three'"),
    (lambda tmp: definition(folder_with(tmp, train=table(), test=table(0)),
                            splits={"train": "train", "dev": None, "test": "test"}),
     r"the test split is empty: .*test\.csv has no rows"),
    (lambda tmp: definition(write(table(8), tmp / "r.csv"), dev_fraction=0.05),
     r"the validation split is empty: dev_fraction 0\.05 of the 8 rows of .*r\.csv rounds to none"),
    (lambda tmp: definition(write(table(3), tmp / "r.csv"), dev_fraction=0.5, test_fraction=0.4),
     r"the train split is empty: the validation and test shares take all 3 rows of .*r\.csv"),
    (lambda tmp: definition(write(table(), tmp / "r.csv").rename(tmp / "r.xlsx")),
     r"r\.xlsx: unsupported file type '\.xlsx' \(supported: \.csv, \.tsv, \.jsonl, \.parquet\)"),
    (lambda tmp: definition(tmp / "nowhere.csv"), r"nowhere\.csv not found"),
    (lambda tmp: definition(write(table(), tmp / "r.csv"), splits={"train": "train", "dev": "dev", "test": None}),
     r"r\.csv is one file: it holds the training rows only\. Set splits\.dev to null"),
    (lambda tmp: definition(folder_with(tmp, train_0=table(), train_1=table().drop(columns="title"))),
     r"train-1\.csv has columns review, stars but .*train-0\.csv, a shard of the same split, has review, title"),
    (lambda tmp: definition(folder_with(tmp, train=table()), splits={"train": "train", "dev": "dev", "test": None}),
     r"no files for split 'dev' \(splits there: train"),
    (lambda tmp: definition(write(table().assign(stars="one"), tmp / "r.csv")), r"has only the label 'one'"),
    (lambda tmp: definition(write(table(), tmp / "r.csv"), metrics=["f1"]), r"metric 'f1' scores two classes"),
    (lambda tmp: definition(write(table(), tmp / "r.csv"), metrics=["pearson"]),
     r"r\.csv, row \d+: label '\w+' is not a number \(metrics pearson score a regression\)"),
    (lambda tmp: definition(write(table().assign(stars=[""] + STARS * 19 + ["one", "two"]), tmp / "r.csv")),
     r"r\.csv, row 1: no label in column 'stars'"),
])
def test_each_data_problem_stops_with_one_message_naming_it(tmp_path, make, expected):
    with pytest.raises(CustomTaskError, match=expected) as error:
        build_custom_task(make(tmp_path), seed=0)
    assert "\n" not in str(error.value)


def test_prepare_task_writes_a_task_of_your_own_like_every_other(tmp_path):
    task = definition(write(table(), tmp_path / "reviews.csv"))
    output = tmp_path / "raw"
    prepare_task.main(["--task", "reviews", "--output", str(output), "--seed", "0", "--custom-task", json.dumps(task)])
    spec = json.loads((output / "task.json").read_text())
    assert spec["split_sizes"] == {"train": 48, "validation": 6, "test": 6} and spec["num_labels"] == 3
    assert spec["name"] == "reviews" and spec["text_columns"] == ["sentence"] and spec["dev_split"] == "validation"
    first = json.loads((output / "validation.jsonl").read_text().splitlines()[0])
    assert set(first) == {"sentence", "label", "idx"}
    with pytest.raises(SystemExit, match="prepare_task reviews: .*no column 'rating'"):
        prepare_task.main(["--task", "reviews", "--output", str(output), "--seed", "0",
                           "--custom-task", json.dumps({**task, "label_column": "rating"})])
    with pytest.raises(SystemExit):   # a name not built in needs its definition
        prepare_task.main(["--task", "reviews", "--output", str(output), "--seed", "0"])
