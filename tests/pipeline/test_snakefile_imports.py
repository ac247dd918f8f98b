"""Parsing the Snakefile imports neither torch nor transformers: every snakemake call parses it (each `dvc repro`
stage is one snakemake call), and those two imports took about 2.7 s of each. The values the Snakefile needs from
the model (its depth for the per-layer chains, its vocabulary for Bort's search order) are read from config.json."""
import re
import subprocess
import sys

import yaml

from conftest import REPO_ROOT
from workflow_scripts.core.models import model_config_values, resolve_model_source

IMPORT_LINE = re.compile(r"^\s*(from workflow_scripts\S* import .+|import workflow_scripts\S*)$")


def snakefile_imports() -> list[str]:
    """The workflow_scripts imports of the Snakefile and its rule files (continued lines joined)."""
    text = "\n".join(path.read_text() for path in [REPO_ROOT / "Snakefile", *sorted(REPO_ROOT.glob("rules/*.smk"))])
    text = re.sub(r"\(\s*([^)]*?)\s*\)", lambda m: m.group(1).replace("\n", " "), text)
    return [line.strip() for line in text.splitlines() if IMPORT_LINE.match(line)]


def test_the_snakefiles_imports_and_model_lookups_load_no_torch():
    imports = snakefile_imports()
    assert any("encoder_depth" in line for line in imports) and any("search_plan" in line for line in imports)
    script = "\n".join([
        "import sys, yaml", *imports,
        "params = yaml.safe_load(open('params.yaml'))",
        "assert encoder_depth(params['model']) == 6",
        "search_plan(params)",
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))",
    ])
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_config_values_read_directly_equal_transformers_autoconfig():
    from transformers import AutoConfig

    name = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["model"]["name"]
    keys = ["num_hidden_layers", "vocab_size", "max_position_embeddings", "type_vocab_size"]
    config = AutoConfig.from_pretrained(resolve_model_source(name)[1])
    assert model_config_values(name, keys, "for the test") == [getattr(config, key) for key in keys]


def test_a_value_missing_from_config_json_takes_transformers_default(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert", "num_hidden_layers": 3}')
    assert model_config_values(str(folder), ["num_hidden_layers", "type_vocab_size"], "for the test") == [3, 2]
