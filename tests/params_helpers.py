"""Library configs for tests, read from params.yaml (and presets): the one home of every hyperparameter, so tests
never restate a value the pipeline uses."""
from conftest import REPO_ROOT

from workflow_scripts.head_pruning.auber import AuberConfig, auber_config_from_mapping
from workflow_scripts.head_pruning.competitors import ConcreteGateConfig
from workflow_scripts.pipeline.params import load_params


def params(*presets: str) -> dict:
    return load_params(str(REPO_ROOT / "params.yaml"), [str(REPO_ROOT / "presets" / f"{p}.yaml") for p in presets])


def paper_auber_config(seed: int = 0, **overrides) -> AuberConfig:
    """AUBER at the paper's settings (presets/auber-paper.yaml over params.yaml), with overrides."""
    return auber_config_from_mapping({**params("auber-paper")["auber"]["default"], **overrides}, seed)


def voita_gate_config(**overrides) -> ConcreteGateConfig:
    return ConcreteGateConfig(**{**params()["competitors"]["voita"], **overrides})


def stage_flags(rule: str, overrides: dict | None = None, presets=(), **wildcards) -> list[str]:
    """The hyperparameter flags the rule passes to its stage (params.yaml through pipeline/params.py), with some
    values replaced for a tiny test."""
    import shlex
    from types import SimpleNamespace

    from workflow_scripts.pipeline.params import StageHparams, rule_hparams

    hparams = rule_hparams(params(*presets), rule, SimpleNamespace(**wildcards))
    unknown = set(overrides or {}) - set(hparams)
    assert not unknown, f"{rule} has no flags {sorted(unknown)}"
    return shlex.split(str(StageHparams({**hparams, **(overrides or {})}, {})))
