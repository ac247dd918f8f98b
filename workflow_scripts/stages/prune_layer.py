"""Stage prune_layer: choose heads of one encoder layer to prune, prune them physically, write the checkpoint.

Before the layer, the training set is re-split (seeded by the run seed and the layer) into mini-train and
mini-dev; the search scores candidates on mini-dev only. Writes a Hugging Face folder with the pruned model plus
search_log.json (decision, mini-dev score before and after, per-episode return / loss / epsilon, reward-cache
hit rate) and mini_split.json (the indices of both parts; finetune_layer trains on mini-train).

Methods: auber (the DQN agent of AUBER; its ablations are auber with other parameters) and the competitors of
head_importance (random, confidence, michel, voita). A competitor prunes as many heads as its budget says: the
count AUBER pruned in this layer for the same task and seed (--budget: AUBER's prune folder of the layer), or the
heads a global ranking picked for the layer (--budget: global_ranking.json). It scores the heads of the current
checkpoint on mini-dev (confidence, michel) or trains gates on mini-train (voita), and prunes the lowest.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tqdm.auto import tqdm
from transformers import AutoTokenizer, DataCollatorWithPadding

from workflow_scripts.head_pruning.auber import STATE_MATRICES, STATE_NORMS, AuberConfig, search_layer
from workflow_scripts.pipeline.cli import stage_parser, start_stage
from workflow_scripts.head_pruning.dqn import DQNConfig
from workflow_scripts.head_pruning.competitors import COMPETITORS, ConcreteGateConfig, lowest_positions, score_heads
from workflow_scripts.core.io_utils import read_json
from workflow_scripts.head_pruning.layerwise import PrunedHeadsScorer, layer_seed, layer_split, seeded_subset
from workflow_scripts.core.models import load_for_classification, save_checkpoint
from workflow_scripts.core.surgery import encoder_layers, kept_head_ids, prune_heads
from workflow_scripts.data.tasks import TRAIN
from workflow_scripts.stages.tokenize_task import load_tokenized
from workflow_scripts.core.training import seed_everything

METHODS = ("auber", *COMPETITORS)


def json_value(text: str):
    """Values rules pass as JSON (null, lists); plain numbers parse too."""
    return json.loads(text)


def add_auber_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AUBER agent (from params.yaml auber.*)")
    group.add_argument("--episodes", type=int, default=150, help="DQN episodes per layer")
    group.add_argument("--state-matrix", choices=STATE_MATRICES, default="value", help="weights the state is read from")
    group.add_argument("--state-norm", choices=STATE_NORMS, default="l1", help="norm of each head's weight block")
    group.add_argument("--reward-scale", type=float, default=100.0, help="reward = scale * change of mini-dev score")
    group.add_argument("--reward-max-examples", type=json_value, default=None,
                       help="score rewards on the first N mini-dev examples (null: all of mini-dev)")
    group.add_argument("--max-pruned-per-layer", type=json_value, default=None,
                       help="most heads pruned in one layer (null: all but one)")
    group.add_argument("--hidden-sizes", type=json_value, default=[512, 512, 512], help="Q-network hidden layers")
    group.add_argument("--leaky-relu-slope", type=float, default=0.01, help="negative slope of the LeakyReLUs")
    group.add_argument("--replay-capacity", type=int, default=5000, help="replay memory size (FIFO)")
    group.add_argument("--replay-batch-size", type=int, default=128, help="transitions per optimisation step")
    group.add_argument("--gamma", type=float, default=1.0, help="discount")
    group.add_argument("--epsilon-start", type=float, default=1.0, help="exploration rate at the first action")
    group.add_argument("--epsilon-end", type=float, default=0.05, help="exploration rate it decays to")
    group.add_argument("--epsilon-decay-actions", type=float, default=256, help="decay constant, in actions")
    group.add_argument("--learning-rate", type=float, default=0.03, help="SGD learning rate of the Q-network")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    group.add_argument("--target-update-episodes", type=int, default=35, help="copy policy to target every N")
    group.add_argument("--grad-clamp", type=json_value, default=1.0, help="clamp gradients to [-c, c] (null: off)")
    group.add_argument("--stop-reward", type=float, default=0.0, help="reward of the stop action")
    group.add_argument("--stop-q-value", type=json_value, default=None, help="fixed Q(s, stop) (null: learned)")


def auber_config_from_args(args, seed: int) -> AuberConfig:
    dqn = DQNConfig(episodes=args.episodes, hidden_sizes=tuple(args.hidden_sizes),
                    leaky_relu_slope=args.leaky_relu_slope, replay_capacity=args.replay_capacity,
                    replay_batch_size=args.replay_batch_size, gamma=args.gamma, epsilon_start=args.epsilon_start,
                    epsilon_end=args.epsilon_end, epsilon_decay_actions=args.epsilon_decay_actions,
                    learning_rate=args.learning_rate, momentum=args.momentum,
                    target_update_episodes=args.target_update_episodes, grad_clamp=args.grad_clamp,
                    stop_reward=args.stop_reward, stop_q_value=args.stop_q_value, seed=seed)
    return AuberConfig(state_matrix=args.state_matrix, state_norm=args.state_norm, reward_scale=args.reward_scale,
                       max_pruned_per_layer=args.max_pruned_per_layer, dqn=dqn)


def episode_progress(layer: int, episodes: int):
    bar = tqdm(total=episodes, desc=f"layer {layer} search", unit="episode", dynamic_ncols=True)

    def report(episode, log):
        bar.update()
        bar.set_postfix(eps=f"{log.epsilon:.2f}", ret=f"{log.episode_return:+.2f}", len=len(log.actions))
        if episode + 1 == episodes:
            bar.close()
    return report


def add_competitor_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("competitors (from params.yaml competitors.*)")
    group.add_argument("--budget", default=None,
                       help="AUBER's prune folder of this layer (prune as many heads as it did) or a "
                            "global_ranking.json (prune the heads it lists for this layer)")
    group.add_argument("--score-max-examples", type=json_value, default=None,
                       help="score heads on N seeded mini-dev rows (null: all of mini-dev)")
    group.add_argument("--voita-penalty", type=float, default=0.1, help="lambda of the L0 penalty")
    group.add_argument("--voita-temperature", type=float, default=0.33, help="hard-concrete temperature beta")
    group.add_argument("--voita-log-alpha-init", type=float, default=2.0, help="initial log alpha of every gate")
    group.add_argument("--voita-learning-rate", type=float, default=0.1, help="Adam rate of the gates")
    group.add_argument("--voita-epochs", type=int, default=2, help="passes over mini-train")
    group.add_argument("--voita-batch-size", type=int, default=32, help="examples per gate update")


def voita_config_from_args(args) -> ConcreteGateConfig:
    return ConcreteGateConfig(penalty=args.voita_penalty, temperature=args.voita_temperature,
                              log_alpha_init=args.voita_log_alpha_init, learning_rate=args.voita_learning_rate,
                              epochs=args.voita_epochs, batch_size=args.voita_batch_size)


def budget_for_layer(budget_path: str, layer: int) -> tuple[int, list[int] | None]:
    """(number of heads to prune, the original ids when a global ranking fixed them)."""
    if budget_path is None:
        raise ValueError("a competitor needs --budget (AUBER's prune folder of the layer or global_ranking.json)")
    if budget_path.endswith(".json"):
        head_ids = read_json(budget_path)["head_ids_by_layer"][str(layer)]
        return len(head_ids), head_ids
    auber_log = read_json(f"{budget_path}/search_log.json")
    if auber_log["layer"] != layer:
        raise ValueError(f"--budget {budget_path} is AUBER's search of layer {auber_log['layer']}, not {layer}")
    return len(auber_log["pruned_head_ids"]), None


def choose_heads_competitor(args, model, train_split, mini_train, mini_dev, metric, collate_fn, device,
                            logger) -> dict:
    """A competitor's decision for one layer, in the shape of AUBER's search log."""
    started = time.perf_counter()
    count, fixed_ids = budget_for_layer(args.budget, args.layer)
    original_ids = kept_head_ids(model, args.layer)
    scoring_rows = seeded_subset(mini_dev, args.score_max_examples, layer_seed(args.seed, args.layer, "score_rows"))
    details, scores = {}, None
    if fixed_ids is None:
        scores_by_layer, details = score_heads(
            args.method, model, [args.layer], train_split.select(scoring_rows), train_split.select(mini_train),
            args.batch_size, collate_fn, device, layer_seed(args.seed, args.layer, args.method),
            voita_config_from_args(args))
        scores = scores_by_layer[args.layer]
        pruned_positions = lowest_positions(scores, count)
    else:
        pruned_positions = sorted(original_ids.index(head_id) for head_id in fixed_ids)
    with PrunedHeadsScorer(model, args.layer, train_split.select(scoring_rows), metric, args.batch_size,
                           collate_fn, device) as scorer:
        before, after = scorer(()), scorer(pruned_positions)
    logger.info("layer %d: %s prunes %d heads (budget %s)%s", args.layer, args.method, count, args.budget,
                "" if scores is None else f"; scores {np.round(scores, 4).tolist()}")
    return {"layer": args.layer, "head_ids": original_ids,
            "scores": None if scores is None else scores.tolist(),
            "pruned_positions": pruned_positions,
            "pruned_head_ids": sorted(original_ids[p] for p in pruned_positions),
            "budget": {"source": args.budget, "heads": count, "fixed_by_global_ranking": fixed_ids is not None},
            "metric": metric, "mini_dev_score_before": before, "mini_dev_score_after": after,
            "mini_dev_examples": len(scoring_rows), "seconds": round(time.perf_counter() - started, 3),
            "details": details}


def choose_heads_auber(args, model, train_split, reward_rows, metric, collate_fn, device, logger) -> dict:
    config = auber_config_from_args(args, layer_seed(args.seed, args.layer, "agent"))
    seed_everything(config.dqn.seed)
    log = search_layer(model, args.layer, train_split.select(reward_rows), metric, args.batch_size, collate_fn,
                       device, config, cache=args.search_cache,
                       progress=episode_progress(args.layer, config.dqn.episodes))
    logger.info("layer %d: %d scores computed for %d requests (%.0f%% hits)", args.layer,
                log["reward_cache"]["evaluations"], log["reward_cache"]["calls"], 100 * log["reward_cache"]["hit_rate"])
    return log


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="checkpoint to prune (the previous layer's, fine-tuned)")
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--output", required=True, help="folder for the pruned checkpoint and the search log")
    parser.add_argument("--layer", type=int, required=True, help="encoder layer to prune (0 = bottom)")
    parser.add_argument("--method", choices=METHODS, default="auber", help="how heads are chosen")
    parser.add_argument("--method-name", default=None,
                        help="the method's name in the pipeline (an ablation's name; default: --method)")
    parser.add_argument("--seed", type=int, default=0, help="run seed; the layer's split and agent derive from it")
    parser.add_argument("--mini-dev-fraction", type=float, required=True,
                        help="share of the training set in mini-dev (paper 1:2 -> 0.6667)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass when scoring")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"], help="attention kernel")
    parser.add_argument("--layer-order", default="bottom_up", help="the chain's layer order (recorded in the log)")
    parser.add_argument("--no-search-cache", dest="search_cache", action="store_false",
                        help="score every candidate from scratch (same decisions, slower; for benchmarks)")
    add_auber_args(parser)
    add_competitor_args(parser)
    args = parser.parse_args(argv)
    if args.method != "auber" and args.budget is None:
        parser.error(f"--method {args.method} needs --budget (how many heads to prune in this layer)")
    logger, device = start_stage(args)

    dataset_dict, task = load_tokenized(args.data)
    train_split = dataset_dict[TRAIN]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    collate_fn = DataCollatorWithPadding(tokenizer)
    model = load_for_classification(args.model, task["num_labels"], args.attn_implementation)
    num_layers = len(encoder_layers(model))
    if not 0 <= args.layer < num_layers:
        parser.error(f"--layer {args.layer}: the model has layers 0..{num_layers - 1}")

    mini_train, mini_dev, reward_rows = layer_split(len(train_split), args.mini_dev_fraction,
                                                    args.reward_max_examples, args.seed, args.layer)
    metric = task["metrics"][0]  # accuracy, or Matthews correlation for CoLA-like tasks
    logger.info("layer %d: %d heads, mini-train %d / mini-dev %d, metric %s, method %s", args.layer,
                encoder_layers(model)[args.layer].attention.self.num_attention_heads, len(mini_train),
                len(mini_dev), metric, args.method)
    if args.method == "auber":
        log = choose_heads_auber(args, model, train_split, reward_rows, metric, collate_fn, device, logger)
    else:
        log = choose_heads_competitor(args, model, train_split, mini_train, mini_dev, metric, collate_fn, device,
                                      logger)
    logger.info("layer %d: prune heads %s; mini-dev %s %.4f -> %.4f", args.layer, log["pruned_head_ids"], metric,
                log["mini_dev_score_before"], log["mini_dev_score_after"])
    prune_heads(model, {args.layer: log["pruned_head_ids"]})
    log.update(method=args.method_name or args.method, algorithm=args.method, task=task["name"], seed=args.seed,
               layer_order=args.layer_order, mini_dev_fraction=args.mini_dev_fraction)
    save_checkpoint(model.cpu(), tokenizer, args.output, extra_json={
        "search_log.json": log,
        "mini_split.json": {"layer": args.layer, "seed": args.seed, "mini_dev_fraction": args.mini_dev_fraction,
                            "mini_train": mini_train, "mini_dev": mini_dev, "reward_examples": reward_rows},
    })
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
