"""ALBERT's options on BERT-family models (core/albert.py): parameter counts of sharing by hand, FLOPs unchanged by
sharing (against torch's FlopCounterMode), shared layers moving together, factorized shapes, parity with
transformers' own AlbertForMaskedLM, save -> load in one call, pruning refused on shared layers, ONNX export."""
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode

from workflow_scripts.core.albert import AlbertOptions, albert_options, apply_albert, shared_parameter_names
from workflow_scripts.core.counters import (Architecture, architecture_flops, architecture_of, architecture_parameters,
                                            count_flops, count_parameters)
from workflow_scripts.core.models import load_for_classification, minilm_folder, save_checkpoint
from workflow_scripts.core.surgery import load_pruned, prune_ffn_neurons, prune_heads

torch.set_num_threads(1)
# 4 layers so that groups of 2 and uneven groups of 3 (layers 0-2, then 3) exist
TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, type_vocab_size=2)
# By hand, hidden 32, 4 heads of 8, FFN 37: one block of each kind
ATTENTION = 3 * (32 * 32 + 32) + (32 * 32 + 32) + 2 * 32  # Q, K, V; output projection; LayerNorm = 4288
FFN = (32 * 37 + 37) + (37 * 32 + 32) + 2 * 32  # in; out; LayerNorm = 2501
EMBEDDING = (100 + 40 + 2) * 32 + 2 * 32  # tables and LayerNorm at width H = 4608
FACTORIZED_EMBEDDING = (100 + 40 + 2) * 16 + 2 * 16 + 16 * 32 + 32  # at width E = 16, then E -> H = 2848


def build(class_name="BertForMaskedLM", options=AlbertOptions(), seed=0, **overrides):
    config_class = getattr(transformers, class_name.split("For")[0].removesuffix("Model") + "Config")
    config = config_class(**{**TINY, **overrides}, attn_implementation="eager")
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config)
    return apply_albert(model, options).eval()


def ids(batch=2, length=9, seed=1):
    return torch.randint(3, 100, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---- parameters and FLOPs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sharing, group_size, encoder", [
    ("none", None, 4 * (ATTENTION + FFN)),
    ("all", None, ATTENTION + FFN),                 # one set for the 4 layers
    ("all", 2, 2 * (ATTENTION + FFN)),              # layers 0-1, 2-3
    ("all", 3, 2 * (ATTENTION + FFN)),              # layers 0-2, then 3 alone
    ("attention", None, ATTENTION + 4 * FFN),
    ("ffn", 2, 4 * ATTENTION + 2 * FFN),
])
def test_shared_tensors_count_once(sharing, group_size, encoder):
    model = build("BertModel", AlbertOptions(sharing=sharing, group_size=group_size))
    counted = count_parameters(model)
    assert counted["encoder"] == encoder and counted["embedding"] == EMBEDDING
    assert counted["total"] == sum(p.numel() for p in model.parameters())  # parameters() yields a shared one once
    described = Architecture(depth=4, heads=4, hidden=32, intermediate=37, vocab=100, max_positions=40,
                             sharing=sharing, sharing_group=group_size)
    assert architecture_parameters(described) == counted
    read_back = architecture_of(model)  # from the model's config.albert
    assert (read_back.sharing, read_back.sharing_group) == (sharing, group_size)
    assert architecture_parameters(read_back) == counted


def test_factorized_embeddings_count_v_times_e_plus_e_times_h():
    model = build("BertModel", AlbertOptions(embedding_size=16, sharing="all", group_size=2))
    counted = count_parameters(model)
    assert counted["embedding"] == FACTORIZED_EMBEDDING and counted["encoder"] == 2 * (ATTENTION + FFN)
    assert architecture_parameters(architecture_of(model)) == counted
    assert counted["total"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("class_name", ["BertModel", "RobertaModel"])
@pytest.mark.parametrize("options", [AlbertOptions(sharing="all"), AlbertOptions(sharing="attention", group_size=2),
                                     AlbertOptions(embedding_size=16), AlbertOptions(16, "ffn", 3)])
def test_flops_equal_torch_flop_counter_and_sharing_leaves_them_unchanged(class_name, options):
    model = build(class_name, options)
    with FlopCounterMode(display=False) as flop_counter, torch.no_grad():
        model(input_ids=ids())
    counted = count_flops(model, batch_size=2, seq_len=9)
    assert counted["total"] == flop_counter.get_total_flops()
    # every layer is applied: the FLOPs are those of the same shape without sharing
    unshared = count_flops(build(class_name, AlbertOptions(embedding_size=options.embedding_size)), 2, 9)
    assert counted == unshared
    if options.embedding_size:  # the projection E -> H, on every token
        assert counted["embedding"] == 2 * (2 * 9) * 16 * 32
        plain = architecture_flops(Architecture(depth=4, heads=4, hidden=32, intermediate=37, vocab=100), 2, 9)
        assert counted["encoder"] == plain["encoder"]


# ---- what sharing and factorization build ------------------------------------------------------------------------

def test_shared_layers_are_one_tensor_and_one_update_moves_every_layer_of_the_group():
    model = build("BertForMaskedLM", AlbertOptions(sharing="attention", group_size=2)).train()
    layers = model.bert.encoder.layer
    assert layers[1].attention.self.query.weight is layers[0].attention.self.query.weight
    assert layers[1].attention.output.LayerNorm.weight is layers[0].attention.output.LayerNorm.weight
    assert layers[3].attention.self.value.bias is layers[2].attention.self.value.bias
    assert layers[2].attention.self.query.weight is not layers[0].attention.self.query.weight  # another group
    assert layers[1].intermediate.dense.weight is not layers[0].intermediate.dense.weight  # FFN not shared
    before = {index: layer.attention.self.query.weight.detach().clone() for index, layer in enumerate(layers)}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(input_ids=ids(), labels=ids(seed=2)).loss.backward()
    optimizer.step()
    for index in (0, 1):
        assert not torch.equal(layers[index].attention.self.query.weight, before[index])
    assert torch.equal(layers[0].attention.self.query.weight, layers[1].attention.self.query.weight)


def test_the_gradient_of_a_shared_tensor_is_the_sum_over_the_layers_that_use_it():
    shared = build("BertModel", AlbertOptions(sharing="all"), hidden_dropout_prob=0.0,
                   attention_probs_dropout_prob=0.0)
    untied = build("BertModel", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    untied.load_state_dict(shared.state_dict())  # every layer holds layer 0's values, in tensors of its own
    for model in (shared, untied):
        model.train()(input_ids=ids()).last_hidden_state.square().sum().backward()
    summed = sum(layer.output.dense.weight.grad for layer in untied.encoder.layer)
    torch.testing.assert_close(shared.encoder.layer[0].output.dense.weight.grad, summed)


@pytest.mark.parametrize("class_name", ["BertForMaskedLM", "RobertaForMaskedLM"])
def test_factorized_embeddings_have_width_e_and_the_mlm_head_maps_back_through_them(class_name):
    model = build(class_name, AlbertOptions(embedding_size=16))
    embeddings = model.base_model.embeddings
    assert embeddings.word_embeddings.weight.shape == (100, 16)
    assert embeddings.position_embeddings.weight.shape == (40, 16)
    assert embeddings.token_type_embeddings.weight.shape == (2, 16)
    assert embeddings.LayerNorm.weight.shape == (16,)
    assert (embeddings.projection.in_features, embeddings.projection.out_features) == (16, 32)
    assert isinstance(embeddings, type(build(class_name).base_model.embeddings))  # still the family's class
    decoder = model.get_output_embeddings()
    assert decoder.weight is embeddings.word_embeddings.weight and decoder.in_features == 16  # tied, (V, E)
    output = model(input_ids=ids(), output_hidden_states=True)
    assert output.logits.shape == (2, 9, 100) and output.hidden_states[0].shape == (2, 9, 32)
    if class_name.startswith("Roberta"):  # RoBERTa's padding position stays a zero row
        assert not embeddings.position_embeddings.weight[embeddings.position_embeddings.padding_idx].any()


def test_a_factorized_shared_bert_computes_what_transformers_albert_computes():
    """The reference someone else wrote: AlbertForMaskedLM (E 16, 4 layers in 2 groups) with the same tensors."""
    albert = transformers.AlbertForMaskedLM(transformers.AlbertConfig(
        **TINY, embedding_size=16, num_hidden_groups=2, inner_group_num=1, hidden_act="gelu",
        attn_implementation="eager")).eval()
    bert = build("BertForMaskedLM", AlbertOptions(16, "all", 2), hidden_act="gelu")
    state = albert.state_dict()
    renamed = {f"bert.embeddings.{name}": state[f"albert.embeddings.{name}"]
               for name in ("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                            "LayerNorm.weight", "LayerNorm.bias")}
    renamed.update({f"bert.embeddings.projection.{name}": state[f"albert.encoder.embedding_hidden_mapping_in.{name}"]
                    for name in ("weight", "bias")})
    layer_names = {"attention.query": "attention.self.query", "attention.key": "attention.self.key",
                   "attention.value": "attention.self.value", "attention.dense": "attention.output.dense",
                   "attention.LayerNorm": "attention.output.LayerNorm", "ffn": "intermediate.dense",
                   "ffn_output": "output.dense", "full_layer_layer_norm": "output.LayerNorm"}
    for group, first_layer in ((0, 0), (1, 2)):
        for theirs, ours in layer_names.items():
            for name in ("weight", "bias"):
                source = state[f"albert.encoder.albert_layer_groups.{group}.albert_layers.0.{theirs}.{name}"]
                renamed[f"bert.encoder.layer.{first_layer}.{ours}.{name}"] = source
    head_names = {"dense": "transform.dense", "LayerNorm": "transform.LayerNorm"}
    for theirs, ours in head_names.items():
        for name in ("weight", "bias"):
            renamed[f"cls.predictions.{ours}.{name}"] = state[f"predictions.{theirs}.{name}"]
    renamed["cls.predictions.bias"] = state["predictions.bias"]
    missing, unexpected = bert.load_state_dict(renamed, strict=False)
    assert not unexpected and set(missing) <= set(shared_parameter_names(bert)) | {
        "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}  # tied: loaded through their sources
    with torch.no_grad():
        torch.testing.assert_close(bert(input_ids=ids()).logits, albert(input_ids=ids()).logits, rtol=0, atol=1e-5)


# ---- checkpoints ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("class_name, options", [
    ("BertForMaskedLM", AlbertOptions(16, "all", 2)),
    ("BertForMaskedLM", AlbertOptions(sharing="ffn")),
    ("RobertaForMaskedLM", AlbertOptions(16, "attention", 3)),
])
def test_a_saved_folder_loads_back_in_one_call_with_sharing_tied_again(class_name, options, tmp_path):
    model = build(class_name, options)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_folder()))
    save_checkpoint(model, tokenizer, str(tmp_path / "model"))
    stored = load_file(tmp_path / "model" / "model.safetensors")
    targets = shared_parameter_names(model)
    assert targets and not set(targets) & set(stored)  # each shared tensor written once, under its first layer
    assert set(targets.values()) <= set(stored)
    assert json.loads((tmp_path / "model" / "config.json").read_text())["albert"] == options.record()
    loaded = load_pruned(tmp_path / "model", transformers.AutoModelForMaskedLM, attn_implementation="eager")
    assert albert_options(loaded.config) == options
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids()).logits, model(input_ids=ids()).logits)
    for target, source in targets.items():
        assert loaded.get_parameter(target) is loaded.get_parameter(source)
    # as a classifier too (Agora, the fine-tunes): the encoder is the saved one, the head new
    classifier = load_for_classification(str(tmp_path / "model"), 3, attn_implementation="eager")
    with torch.no_grad():
        assert torch.equal(classifier.base_model(input_ids=ids()).last_hidden_state,
                           model.base_model(input_ids=ids()).last_hidden_state)
    assert count_parameters(classifier.base_model)["encoder"] == count_parameters(model.base_model)["encoder"]


def test_transformers_alone_refuses_a_factorized_folder(tmp_path):
    model = build("BertForMaskedLM", AlbertOptions(embedding_size=16))
    model.save_pretrained(tmp_path)
    with pytest.raises(Exception, match="(?i)size|shape"):
        transformers.BertForMaskedLM.from_pretrained(tmp_path)


def test_a_shared_model_cannot_be_pruned_and_a_factorized_one_can_and_loads_back(tmp_path):
    shared = build("BertModel", AlbertOptions(sharing="all"))
    with pytest.raises(ValueError, match="share parameters"):
        prune_heads(shared, {1: [0]})
    with pytest.raises(ValueError, match="share parameters"):
        prune_ffn_neurons(shared, {0: [1, 2]})
    factorized = build("BertForSequenceClassification", AlbertOptions(embedding_size=16), num_labels=2)
    prune_heads(factorized, {0: [1], 2: [0, 3]})
    prune_ffn_neurons(factorized, {1: [0, 5]})
    factorized.save_pretrained(tmp_path)
    loaded = load_pruned(tmp_path, attn_implementation="eager")
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids()).logits, factorized(input_ids=ids()).logits)
    assert count_parameters(loaded) == count_parameters(factorized)
    assert architecture_parameters(architecture_of(loaded))["encoder"] == count_parameters(loaded)["encoder"]


def test_options_are_applied_once_and_bad_ones_are_refused():
    model = build("BertModel", AlbertOptions(embedding_size=16))
    with pytest.raises(ValueError, match="already has ALBERT options"):
        apply_albert(model, AlbertOptions(sharing="all"))
    with pytest.raises(ValueError, match="sharing must be one of"):
        AlbertOptions(sharing="layers")
    with pytest.raises(ValueError, match="group_size must be a positive integer"):
        AlbertOptions(sharing="all", group_size=0)
    with pytest.raises(ValueError, match="its own embedding_size"):
        build("ElectraModel", AlbertOptions(embedding_size=8), embedding_size=16)


def test_onnx_export_of_a_factorized_shared_classifier_matches_pytorch(tmp_path):
    from workflow_scripts.tools.export_onnx import export_and_verify

    model = build("BertForSequenceClassification", AlbertOptions(16, "all", 2), num_labels=3)
    model.save_pretrained(tmp_path / "ckpt")
    report = export_and_verify(tmp_path / "ckpt", tmp_path / "model.onnx")
    assert report["ok"] and report["max_abs_diff"]["logits"] < 1e-4
