"""Parameter and FLOP counters against the real modules (tensor sizes) and torch's FlopCounterMode."""

import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from workflow_scripts.core.counters import (
    Architecture,
    architecture_flops,
    architecture_of,
    architecture_parameters,
    count_flops,
    count_parameters,
)
from workflow_scripts.core.latency import measure_latency
from workflow_scripts.core.surgery import prune_ffn_neurons, prune_heads

torch.set_num_threads(1)
TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37)


def build(class_name: str, prune: bool = False, **overrides):
    config_class = getattr(transformers, class_name.split("For")[0].removesuffix("Model") + "Config")
    config = config_class(**{**TINY, **overrides}, attn_implementation="eager")
    model = getattr(transformers, class_name)(config).eval()
    if prune:
        prune_heads(model, {0: [1], 1: [0, 1, 2, 3], 2: [0, 3]})
        prune_ffn_neurons(model, {0: [0, 5, 36], 2: list(range(37))})
    return model


def tensor_sizes(model) -> int:
    return sum(p.numel() for p in model.parameters())  # nn.Module.parameters() yields a tied tensor once


def test_bert_base_reference_numbers():
    bert_base = Architecture(depth=12, heads=12, hidden=768, intermediate=3072)
    # 22.35 GFLOPs for one 128-token sequence, the commonly quoted ~22 G; 110M parameters of BertModel
    assert architecture_flops(bert_base, batch_size=1, seq_len=128)["total"] == 22_348_431_360
    assert architecture_parameters(bert_base)["total"] == 109_482_240
    assert architecture_flops(bert_base, batch_size=8, seq_len=128)["total"] == 8 * 22_348_431_360


@pytest.mark.parametrize("class_name, prune, overrides, num_labels", [
    ("BertModel", False, {}, 0),
    ("BertModel", True, {}, 0),
    ("BertForSequenceClassification", True, {"num_labels": 3}, 3),
    ("RobertaModel", True, {"max_position_embeddings": 40, "type_vocab_size": 1}, 0),
    ("ElectraModel", True, {"embedding_size": 16}, 0),
])
def test_parameters_equal_module_tensor_sizes(class_name, prune, overrides, num_labels):
    model = build(class_name, prune, **overrides)
    counted = count_parameters(model)
    assert counted["total"] == tensor_sizes(model)
    assert counted["embedding"] == tensor_sizes(model.base_model.embeddings) + tensor_sizes(
        getattr(model.base_model, "embeddings_project", torch.nn.Identity()))
    assert counted["encoder"] == tensor_sizes(model.base_model.encoder)
    from_architecture = architecture_parameters(Architecture(**{
        **architecture_of(model).__dict__, "num_labels": num_labels}))
    assert from_architecture == counted


def test_tied_and_task_head_parameters_land_in_other():
    model = build("RobertaForMaskedLM", prune=True)  # LM decoder weight tied to the word embeddings
    counted = count_parameters(model)
    assert counted["total"] == tensor_sizes(model)
    word_embeddings = model.roberta.embeddings.word_embeddings.weight
    head_only = [p for p in model.lm_head.parameters() if p is not word_embeddings]
    assert counted["other"] == sum(p.numel() for p in head_only)


def test_albert_factorized_embeddings_match_the_architecture():
    # one parameter group per layer, so the layers are distinct like BERT's
    config = transformers.AlbertConfig(**TINY, embedding_size=16, num_hidden_groups=3, attn_implementation="eager")
    model = transformers.AlbertModel(config).eval()
    arch = Architecture(depth=3, heads=4, hidden=32, intermediate=37, vocab=100, embedding_size=16)
    assert architecture_parameters(arch) == count_parameters(model)
    assert count_parameters(model)["total"] == tensor_sizes(model)
    with FlopCounterMode(display=False) as flop_counter:
        model(input_ids=torch.randint(0, 100, (2, 9)))
    assert architecture_flops(arch, 2, 9)["total"] == flop_counter.get_total_flops()


@pytest.mark.parametrize("class_name", ["BertModel", "RobertaModel"])
@pytest.mark.parametrize("prune", [False, True])
def test_flops_equal_torch_flop_counter(class_name, prune):
    # eager attention: CPU sdpa's fused kernel is invisible to FlopCounterMode
    model = build(class_name, prune)
    with FlopCounterMode(display=False) as flop_counter, torch.no_grad():
        model(input_ids=torch.randint(3, 100, (2, 9)))
    assert count_flops(model, batch_size=2, seq_len=9)["total"] == flop_counter.get_total_flops()


def test_flops_split_by_layer_reflects_pruning():
    model = build("BertModel", prune=True)
    flops = count_flops(model, batch_size=1, seq_len=16)
    by_hand = Architecture(depth=3, heads=4, hidden=32, intermediate=37, vocab=100,
                           heads_per_layer=(3, 0, 2), ffn_per_layer=(34, 37, 0))
    assert flops == architecture_flops(by_hand, batch_size=1, seq_len=16)
    unpruned = count_flops(build("BertModel"), batch_size=1, seq_len=16)
    assert all(p < u for p, u in zip(flops["encoder_by_layer"], unpruned["encoder_by_layer"]))
    assert flops["pooler"] == unpruned["pooler"] > 0


def test_measure_latency_restores_threads_and_mode():
    model = build("BertForSequenceClassification", prune=True).train()
    threads_before = torch.get_num_threads()
    result = measure_latency(model, batch_size=2, seq_len=8, warmup=1, repeats=3, threads=1)
    assert result["p10_s"] <= result["median_s"] <= result["p90_s"]
    assert result["threads"] == 1 and result["repeats"] == 3 and result["device"] == "cpu"
    assert torch.get_num_threads() == threads_before and model.training
