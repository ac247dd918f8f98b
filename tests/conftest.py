"""Shared fixtures: offline hub, tiny models built from a config, the GLUE fixture."""
import os
import sys
from pathlib import Path

# Before transformers/datasets are imported: nothing in the tests may reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with random weights and MiniLM's tokenizer, saved as a Hugging Face folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from workflow_scripts.core.models import minilm_folder

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def glue_folder(tmp_path_factory) -> Path:
    from glue_fixture import write_glue_fixture

    return write_glue_fixture(tmp_path_factory.mktemp("glue"))
