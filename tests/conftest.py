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


def build_corpus_and_teacher(model_folder: Path, root: Path, sentences: int = 300) -> tuple[Path, Path]:
    """A small generated corpus and `model_folder` as Bort's teacher (its masked-LM head fitted for 2 steps), built by
    the real stage CLIs under root: (corpus folder, teacher folder)."""
    from workflow_scripts.stages import prepare_corpus, teacher_prep

    corpus, teacher = root / "corpus", root / "teacher"
    prepare_corpus.main(["--tokenizer", str(model_folder), "--output", str(corpus), "--source", "generated",
                         "--text-column", "text", "--hub-config", "null", "--max-documents", "null",
                         "--generated-sentences", str(sentences), "--max-length", "24", "--heldout-fraction", "0.1",
                         "--seed", "0", "--threads", "1"])
    teacher_prep.main(["--model", str(model_folder), "--corpus", str(corpus), "--output", str(teacher),
                       "--train", "head", "--steps", "2", "--learning-rate", "1e-3", "--warmup-ratio", "0.1",
                       "--weight-decay", "0.01", "--max-grad-norm", "1.0", "--batch-size", "8",
                       "--mask-probability", "0.15", "--seed", "0", "--threads", "1"])
    return corpus, teacher
