"""Stage prune_layer: choose heads of one encoder layer to prune, prune them physically, write the checkpoint.

Before the layer, the training set is re-split (seeded by the run seed and the layer) into mini-train and
mini-dev; the search scores candidates on mini-dev only. Writes a Hugging Face folder with the pruned model plus
search_log.json (decision, mini-dev score before and after, per-episode return / loss / epsilon, reward-cache
hit rate) and mini_split.json (the indices of both parts; finetune_layer trains on mini-train).

Methods: auber (the DQN agent of AUBER).
"""
from __future__ import annotations

import argparse
import json

from tqdm.auto import tqdm
from transformers import AutoTokenizer, DataCollatorWithPadding

from .auber import STATE_MATRICES, STATE_NORMS, AuberConfig, search_layer
from .cli import stage_parser, start_stage
from .dqn import DQNConfig
from .layerwise import layer_seed, layer_split
from .models import load_for_classification, save_checkpoint
from .surgery import encoder_layers, prune_heads
from .tasks import TRAIN
from .tokenize_task import load_tokenized
from .training import seed_everything

METHODS = ("auber",)


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


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="checkpoint to prune (the previous layer's, fine-tuned)")
    parser.add_argument("--data", required=True, help="tokenized task folder")
    parser.add_argument("--output", required=True, help="folder for the pruned checkpoint and the search log")
    parser.add_argument("--layer", type=int, required=True, help="encoder layer to prune (0 = bottom)")
    parser.add_argument("--method", choices=METHODS, default="auber", help="how heads are chosen")
    parser.add_argument("--seed", type=int, default=0, help="run seed; the layer's split and agent derive from it")
    parser.add_argument("--mini-dev-fraction", type=float, required=True,
                        help="share of the training set in mini-dev (paper 1:2 -> 0.6667)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass when scoring")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"], help="attention kernel")
    parser.add_argument("--no-search-cache", dest="search_cache", action="store_false",
                        help="score every candidate from scratch (same decisions, slower; for benchmarks)")
    add_auber_args(parser)
    args = parser.parse_args(argv)
    logger, device = start_stage(args)

    dataset_dict, task = load_tokenized(args.data)
    train_split = dataset_dict[TRAIN]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = load_for_classification(args.model, task["num_labels"], args.attn_implementation)
    num_layers = len(encoder_layers(model))
    if not 0 <= args.layer < num_layers:
        parser.error(f"--layer {args.layer}: the model has layers 0..{num_layers - 1}")

    mini_train, mini_dev, reward_rows = layer_split(len(train_split), args.mini_dev_fraction,
                                                    args.reward_max_examples, args.seed, args.layer)
    metric = task["metrics"][0]  # accuracy, or Matthews correlation for CoLA-like tasks
    config = auber_config_from_args(args, layer_seed(args.seed, args.layer, "agent"))
    logger.info("layer %d: %d heads, mini-train %d / mini-dev %d (rewards on %d), reward metric %s",
                args.layer, encoder_layers(model)[args.layer].attention.self.num_attention_heads,
                len(mini_train), len(mini_dev), len(reward_rows), metric)
    seed_everything(config.dqn.seed)
    log = search_layer(model, args.layer, train_split.select(reward_rows), metric, args.batch_size,
                       DataCollatorWithPadding(tokenizer), device, config, cache=args.search_cache,
                       progress=episode_progress(args.layer, config.dqn.episodes))
    logger.info("layer %d: prune heads %s; mini-dev %s %.4f -> %.4f; %d scores computed for %d requests (%.0f%% hits)",
                args.layer, log["pruned_head_ids"], metric, log["mini_dev_score_before"], log["mini_dev_score_after"],
                log["reward_cache"]["evaluations"], log["reward_cache"]["calls"], 100 * log["reward_cache"]["hit_rate"])
    prune_heads(model, {args.layer: log["pruned_head_ids"]})
    log.update(method=args.method, task=task["name"], seed=args.seed, mini_dev_fraction=args.mini_dev_fraction)
    save_checkpoint(model.cpu(), tokenizer, args.output, extra_json={
        "search_log.json": log,
        "mini_split.json": {"layer": args.layer, "seed": args.seed, "mini_dev_fraction": args.mini_dev_fraction,
                            "mini_train": mini_train, "mini_dev": mini_dev, "reward_examples": reward_rows},
    })
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
