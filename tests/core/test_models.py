"""Model resolution (alias, local folder, hub id) and checkpoint writing."""
import json
import os

import pytest
import torch

from workflow_scripts.core.io_utils import atomic_output_dir
from workflow_scripts.core.models import (build_random_init, load_for_classification, load_pretrained, minilm_folder,
                                     resolve_model_source, save_checkpoint)


def test_minilm_alias_points_at_the_packaged_safetensors():
    kind, folder = resolve_model_source("minilm")
    assert kind == "local" and folder == str(minilm_folder())
    config = json.loads((minilm_folder() / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"]) == (6, 12, 384)
    assert (minilm_folder() / "model.safetensors").is_file()


@pytest.mark.parametrize("name, kind", [("bert-base-cased", "hub"), ("roberta-base", "hub"),
                                        ("FacebookAI/roberta-large", "hub")])
def test_hub_ids_are_recognized(name, kind):
    assert resolve_model_source(name) == (kind, name)


@pytest.mark.parametrize("name, message", [("./missing/model", "does not exist"), ("minilmm", "unknown model"),
                                           ("a b", "unknown model")])
def test_bad_model_names_are_rejected(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_model_source(name)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model_source(str(tmp_path))


def test_local_folder_loads_with_its_own_class(tiny_model_folder):
    model, tokenizer = load_pretrained(str(tiny_model_folder))
    assert model.__class__.__name__ == "BertModel" and model.config.num_hidden_layers == 2
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id


def test_hub_id_offline_fails_with_an_actionable_message():
    # HF_HUB_OFFLINE=1 (conftest): the real hub code path runs and reports how to get the model.
    with pytest.raises(RuntimeError, match="hf download"):
        load_pretrained("google-bert/bert-base-cased-not-cached")


def test_random_init_builds_the_requested_shape(tiny_model_folder):
    model, _ = load_pretrained(str(tiny_model_folder))
    shape = {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 24}
    first, second = build_random_init(model, shape, seed=3), build_random_init(model, shape, seed=3)
    assert first.config.num_hidden_layers == 1 and first.config.hidden_size == 16
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_checkpoint_round_trip_is_safetensors_and_exact(tiny_model_folder, tmp_path):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = load_for_classification(str(tiny_model_folder), num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    save_checkpoint(model, tokenizer, str(tmp_path / "ckpt"), extra_json={"note.json": {"a": 1}})
    files = set(os.listdir(tmp_path / "ckpt"))
    assert {"config.json", "model.safetensors", "tokenizer.json", "note.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    reloaded = load_for_classification(str(tmp_path / "ckpt"), num_labels=2).eval()
    inputs = tokenizer(["a short sentence"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)


def test_atomic_output_dir_keeps_the_old_folder_when_a_stage_dies(tmp_path):
    final = tmp_path / "checkpoint"
    final.mkdir()
    (final / "weights").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(str(final)) as staging:
            (open(os.path.join(staging, "weights"), "w")).write("half-written")
            raise KeyboardInterrupt  # a stage killed midway
    assert (final / "weights").read_text() == "old"
    assert os.listdir(tmp_path) == ["checkpoint"]  # no partial folder left behind
    with atomic_output_dir(str(final)) as staging:
        (open(os.path.join(staging, "weights"), "w")).write("new")
    assert (final / "weights").read_text() == "new" and os.listdir(tmp_path) == ["checkpoint"]


def test_pipeline_loader_round_trips_a_pruned_checkpoint(tiny_model_folder, tmp_path):
    """What a later stage writes (uneven heads, an empty layer, a shrunk FFN) the next stage loads, exactly."""
    from transformers import AutoTokenizer

    from workflow_scripts.core.surgery import model_structure, prune_ffn_neurons, prune_heads

    torch.manual_seed(0)
    model = load_for_classification(str(tiny_model_folder), num_labels=3).eval()
    prune_heads(model, {0: [1, 3], 1: [0, 1, 2, 3]})
    prune_ffn_neurons(model, {1: list(range(10))})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    save_checkpoint(model, tokenizer, str(tmp_path / "pruned"))
    reloaded = load_for_classification(str(tmp_path / "pruned"), num_labels=3).eval()
    assert model_structure(reloaded)["heads_kept_by_layer"] == [[0, 2], []]
    assert model_structure(reloaded)["ffn_size_by_layer"] == [64, 54]
    inputs = tokenizer(["a short sentence", "another one"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
