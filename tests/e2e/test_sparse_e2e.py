"""The unstructured pruning baselines in the tiny workflow built by the real snakemake (tests/built_workflow.py):
the IMP chain (2 rounds to 0.2, the pooler pruned) and the magnitude baseline, evaluated; each round's ticket is
rewound to the pretrained weights with the previous fine-tune's classifier, and the masks survive every fine-tune."""
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from built_workflow import SNAKEMAKE, built  # noqa: F401 (the shared build, a fixture)
from workflow_repo import jobs_run_by_snakemake, run

pytestmark = pytest.mark.e2e
TASK = "gen_mrpc"                                  # tiny.yaml: unstructured_pruning.tasks
TARGETS = [f"models/{TASK}/imp/sparsity_0.2/evaluate/metrics.json",
           f"models/{TASK}/magnitude/sparsity_0.5/evaluate/metrics.json"]


@pytest.fixture
def repo(built):
    return built


def weights(repo, folder):
    return load_file(repo / folder / "model.safetensors")


def masks_of(repo, folder):
    return load_file(repo / folder / "masks.safetensors")


def test_the_imp_chain_and_the_magnitude_baseline_are_built_and_evaluated(repo):
    # the jobs these two targets need, from scratch (a dry run of them forced)
    jobs = jobs_run_by_snakemake(run(SNAKEMAKE + ["--dry-run", "--forceall", *TARGETS], repo).stdout)
    assert sorted(set(jobs)) == ["evaluate_sparse", "fetch_model", "finetune_initial", "finetune_magnitude",
                                      "imp_finetune", "imp_finetune_final", "imp_prune", "prepare_task",
                                      "prune_magnitude", "tokenize_task"]
    assert jobs.count("imp_prune") == 2 and jobs.count("imp_finetune") == 1
    for target in TARGETS:
        metrics = json.loads((repo / target).read_text())
        assert metrics["validation"]["num_examples"] == 32 and "accuracy" in metrics["validation"]
    assert (repo / f"logs/imp_prune/{TASK}-round_2.log").stat().st_size > 0
    assert "Nothing to be done" in run(SNAKEMAKE + ["--dry-run", *TARGETS], repo).stdout
    assert "prune_magnitude-gen_mrpc-0_5" in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]


def test_rounds_reach_10_then_20_percent_of_the_original_weights_and_pruned_stays_pruned(repo):
    previous = None
    for k, sparsity in enumerate((0.1, 0.2), 1):
        report = json.loads((repo / f"models/{TASK}/imp/round_{k}/ticket/sparsity.json").read_text())
        entries = report["global"]["entries"]
        assert report["global"]["pruned"] == round(sparsity * entries) == report["global"]["zeros"]
        assert "bert.pooler.dense.weight" in report["per_matrix"]            # tiny.yaml prunes the pooler
        masks = masks_of(repo, f"models/{TASK}/imp/round_{k}/ticket")
        if previous is not None:
            assert all((masks[name] <= previous[name]).all() for name in previous)
        previous = masks


def test_each_ticket_is_rewound_to_the_pretrained_backbone_with_the_previous_fine_tunes_classifier(repo):
    pretrained = weights(repo, "models/base")  # a BertModel: keys without "bert."
    for k, previous in ((1, f"models/{TASK}/base/finetune_initial"), (2, f"models/{TASK}/imp/round_1/finetune")):
        ticket_folder = f"models/{TASK}/imp/round_{k}/ticket"
        ticket, masks = weights(repo, ticket_folder), masks_of(repo, ticket_folder)
        fine_tuned = weights(repo, previous)
        for name, tensor in ticket.items():
            if name.startswith("classifier."):
                assert torch.equal(tensor, fine_tuned[name])
            else:
                original = pretrained[name.removeprefix("bert.")]
                keep = masks.get(name, torch.ones_like(tensor, dtype=torch.bool))
                assert torch.equal(tensor[keep], original[keep]) and (tensor[~keep] == 0).all(), name


def test_fine_tunes_keep_the_masks_and_write_them_next_to_the_weights(repo):
    for ticket, finetuned in ((f"models/{TASK}/imp/round_2/ticket", f"models/{TASK}/imp/sparsity_0.2/finetune"),
                              (f"models/{TASK}/magnitude/sparsity_0.5/prune",
                               f"models/{TASK}/magnitude/sparsity_0.5/finetune")):
        masks, start, end = masks_of(repo, ticket), weights(repo, ticket), weights(repo, finetuned)
        assert masks.keys() == masks_of(repo, finetuned).keys()
        for name, mask in masks.items():
            assert (end[name][~mask] == 0).all() and not torch.equal(end[name][mask], start[name][mask])
        report = json.loads((repo / finetuned / "sparsity.json").read_text())
        assert report["global"]["zeros"] >= report["global"]["pruned"] == int(sum((~m).sum() for m in masks.values()))
        assert report["target_sparsity"] in (0.2, 0.5)
