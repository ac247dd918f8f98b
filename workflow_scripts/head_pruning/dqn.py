"""The DQN agent of AUBER (Lee et al., 2021, section 3.2 and Algorithm 1), for one layer at a time.

An episode starts from a layer's state vector s (one entry per head). Action i < H prunes head i and sets
s[i] = 0; action H stops (terminal, reward `stop_reward`). A pruned head is never chosen again (its Q-value is
masked), and once `max_pruned` heads are gone only stopping is allowed. Transitions go to a FIFO replay memory;
the policy network takes one optimisation step per episode (`updates_per_episode`, beyond the paper), at its end,
each on a uniformly sampled batch, against a target network that is copied from the policy every `target_update_episodes` episodes. After the last episode the
greedy policy (no exploration) decides the layer: the learned policy, not the best episode seen.

Defaults are the paper's (MLP 12-512-512-512-13 with LeakyReLU, replay 5000, batch 128, gamma 1, epsilon 1 ->
0.05 with decay 256 counted per action, 150 episodes). Where the paper is silent they are the authors' code's
(Huber loss, SGD lr 0.03 momentum 0.9, gradients clamped to [-1, 1], target copy every 35 episodes). The code
also fixes Q(s, stop) = 0.2; that is `stop_q_value` (None: learned, as in the paper).

The environment is anything with `num_heads`, `max_pruned`, `initial_state()` and `prune_reward(pruned, head)`;
AUBER's (mini-dev score change of a BERT layer) is in `auber.py`, and the tests use synthetic ones.
"""
from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn


@dataclass
class DQNConfig:
    """The agent's schedule and network (auber.* in params.yaml, which documents each value and its source)."""
    episodes: int = field(metadata={"help": "DQN episodes per layer"})
    hidden_sizes: tuple[int, ...] = field(metadata={"help": "Q-network hidden layers"})
    leaky_relu_slope: float = field(metadata={"help": "negative slope of the LeakyReLUs"})
    replay_capacity: int = field(metadata={"help": "replay memory size (FIFO)"})
    replay_batch_size: int = field(metadata={"help": "transitions per optimisation step"})
    gamma: float = field(metadata={"help": "discount"})
    epsilon_start: float = field(metadata={"help": "exploration rate at the first action"})
    epsilon_end: float = field(metadata={"help": "exploration rate it decays to"})
    epsilon_decay_actions: float = field(metadata={"help": "decay constant, in actions"})
    learning_rate: float = field(metadata={"help": "SGD learning rate of the Q-network"})
    momentum: float = field(metadata={"help": "SGD momentum"})
    target_update_episodes: int = field(metadata={"help": "copy the policy network to the target every N episodes"})
    updates_per_episode: int = field(metadata={"help": "optimisation steps at the end of each episode (paper 1)"})
    grad_clamp: float | None = field(metadata={"help": "clamp each gradient entry to [-c, c] (null: off)"})
    stop_reward: float = field(metadata={"help": "reward of the stop action"})
    stop_q_value: float | None = field(metadata={"help": "fixed Q(s, stop) (null: learned, the paper)"})
    # Not a parameter: each layer's agent is seeded from the run seed and the layer (layerwise.layer_seed).
    seed: int = field(default=0, metadata={"cli": False})

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)  # JSON gives a list


class PruningEnvironment(Protocol):
    num_heads: int
    max_pruned: int

    def initial_state(self) -> np.ndarray: ...

    def prune_reward(self, pruned: tuple[int, ...], head: int) -> float: ...


@dataclass
class Transition:
    state: np.ndarray            # (H,)
    action: int
    reward: float
    next_state: np.ndarray | None  # None after the stop action (terminal)


@dataclass
class EpisodeLog:
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    epsilon: float = 1.0        # at the episode's last action
    loss: float | None = None   # of the last optimisation step at its end (None before the memory holds a batch)
    updates: int = 0            # optimisation steps taken at its end

    @property
    def episode_return(self) -> float:
        return float(sum(self.rewards))


@dataclass
class SearchResult:
    pruned_heads: list[int]       # positions in the layer, in the order the greedy policy pruned them
    greedy_rewards: list[float]
    episodes: list[EpisodeLog]
    final_q_values: list[float]   # Q(s0, .) of the trained policy network

    @property
    def updates(self) -> int:
        """Optimiser steps the policy network took: 0 means the decision came from its random initialisation."""
        return sum(episode.updates for episode in self.episodes)

    def to_json(self) -> dict:
        return {
            "dqn_updates": self.updates,
            "pruned_heads": self.pruned_heads,
            "greedy_rewards": self.greedy_rewards,
            "final_q_values": self.final_q_values,
            "episodes": [{"actions": e.actions, "rewards": e.rewards, "return": e.episode_return,
                          "epsilon": e.epsilon, "loss": e.loss, "updates": e.updates} for e in self.episodes],
        }


def q_network(num_heads: int, config: DQNConfig) -> nn.Sequential:
    """MLP H -> hidden... -> H+1 with LeakyReLU after every layer but the last."""
    sizes = [num_heads, *config.hidden_sizes, num_heads + 1]
    modules: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        modules.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            modules.append(nn.LeakyReLU(config.leaky_relu_slope))
    return nn.Sequential(*modules)


def epsilon_at(actions_taken: int, config: DQNConfig) -> float:
    """eps = eps_end + (eps_start - eps_end) * exp(-actions / decay) (paper, equation 3)."""
    return config.epsilon_end + (config.epsilon_start - config.epsilon_end) * math.exp(
        -actions_taken / config.epsilon_decay_actions)


def valid_action_mask(states: torch.Tensor, max_pruned: int) -> torch.Tensor:
    """(B, H+1) bool: unpruned heads (state entry != 0; softmax entries never are) while fewer than `max_pruned`
    heads are gone, and always the stop action."""
    unpruned = states != 0                                                   # (B, H)
    can_prune = (~unpruned).sum(dim=1, keepdim=True) < max_pruned            # (B, 1)
    stop = torch.ones_like(unpruned[:, :1])
    return torch.cat([unpruned & can_prune, stop], dim=1)


class DQNAgent:
    def __init__(self, num_heads: int, max_pruned: int, config: DQNConfig):
        self.num_heads, self.max_pruned, self.config = num_heads, max_pruned, config
        self.stop_action = num_heads
        torch.manual_seed(config.seed)
        self.policy = q_network(num_heads, config)
        self.target = q_network(num_heads, config)
        self.target.load_state_dict(self.policy.state_dict())
        self.target.eval()
        self.optimizer = torch.optim.SGD(self.policy.parameters(), lr=config.learning_rate, momentum=config.momentum)
        self.memory: deque[Transition] = deque(maxlen=config.replay_capacity)
        self.rng = random.Random(config.seed)
        self.actions_taken = 0

    def masked_q(self, network: nn.Module, states: torch.Tensor) -> torch.Tensor:
        """(B, H+1) Q-values with invalid actions at -inf and, if configured, Q(s, stop) fixed."""
        q_values = network(states)
        if self.config.stop_q_value is not None:
            q_values = torch.cat([q_values[:, :-1], torch.full_like(q_values[:, -1:], self.config.stop_q_value)], 1)
        return q_values.masked_fill(~valid_action_mask(states, self.max_pruned), float("-inf"))

    def greedy_action(self, state: np.ndarray) -> int:
        with torch.no_grad():
            return int(self.masked_q(self.policy, torch.as_tensor(state)[None]).argmax(dim=1).item())

    def choose_action(self, state: np.ndarray) -> tuple[int, float]:
        """Decaying epsilon-greedy; a random action is uniform over the valid ones (stop included)."""
        epsilon = epsilon_at(self.actions_taken, self.config)
        self.actions_taken += 1
        if self.rng.random() < epsilon:
            valid = valid_action_mask(torch.as_tensor(state)[None], self.max_pruned)[0].nonzero().flatten().tolist()
            return self.rng.choice(valid), epsilon
        return self.greedy_action(state), epsilon

    def optimize(self) -> float | None:
        """One step on a replay batch: Huber loss between Q(s, a) and r + gamma * max_a' Q_target(s', a')."""
        if len(self.memory) < self.config.replay_batch_size:
            return None
        batch = self.rng.sample(list(self.memory), self.config.replay_batch_size)
        states = torch.as_tensor(np.stack([t.state for t in batch]))                   # (B, H)
        actions = torch.tensor([t.action for t in batch])                               # (B,)
        rewards = torch.tensor([t.reward for t in batch], dtype=torch.float32)          # (B,)
        nonterminal = torch.tensor([t.next_state is not None for t in batch])          # (B,)
        q_taken = self.masked_q(self.policy, states).gather(1, actions[:, None])[:, 0]  # (B,)
        next_values = torch.zeros(len(batch))
        if nonterminal.any():
            next_states = torch.as_tensor(np.stack([t.next_state for t in batch if t.next_state is not None]))
            with torch.no_grad():
                next_values[nonterminal] = self.masked_q(self.target, next_states).max(dim=1).values
        loss = nn.functional.smooth_l1_loss(q_taken, rewards + self.config.gamma * next_values)
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.grad_clamp is not None:
            for parameter in self.policy.parameters():
                parameter.grad.data.clamp_(-self.config.grad_clamp, self.config.grad_clamp)
        self.optimizer.step()
        return float(loss.item())


def _step(environment: PruningEnvironment, state: np.ndarray, pruned: list[int], action: int,
          stop_action: int, stop_reward: float) -> tuple[float, np.ndarray | None]:
    if action == stop_action:
        return stop_reward, None
    reward = environment.prune_reward(tuple(pruned), action)
    pruned.append(action)
    next_state = state.copy()
    next_state[action] = 0.0
    return reward, next_state


def greedy_rollout(agent: DQNAgent, environment: PruningEnvironment) -> tuple[list[int], list[float]]:
    """The trained policy without exploration: heads pruned in order, and the rewards seen."""
    state, pruned, rewards = environment.initial_state(), [], []
    while True:
        action = agent.greedy_action(state)
        reward, next_state = _step(environment, state, pruned, action, agent.stop_action, agent.config.stop_reward)
        if next_state is None:
            return pruned, rewards
        rewards.append(reward)
        state = next_state


def train_agent(environment: PruningEnvironment, config: DQNConfig, progress=None) -> SearchResult:
    """Algorithm 1, lines 2-30, for one layer: train a fresh agent for `config.episodes`, then decide greedily."""
    agent = DQNAgent(environment.num_heads, environment.max_pruned, config)
    episodes = []
    for episode in range(config.episodes):
        state, pruned, log = environment.initial_state(), [], EpisodeLog()
        while True:
            action, log.epsilon = agent.choose_action(state)
            reward, next_state = _step(environment, state, pruned, action, agent.stop_action, config.stop_reward)
            agent.memory.append(Transition(state, action, reward, next_state))
            log.actions.append(action)
            log.rewards.append(reward)
            if next_state is None:
                break
            state = next_state
        for _ in range(config.updates_per_episode):
            loss = agent.optimize()
            if loss is None:  # the memory does not hold a batch yet
                break
            log.loss, log.updates = loss, log.updates + 1
        if episode % config.target_update_episodes == 0:
            agent.target.load_state_dict(agent.policy.state_dict())
        episodes.append(log)
        if progress is not None:
            progress(episode, log)
    pruned_heads, greedy_rewards = greedy_rollout(agent, environment)
    with torch.no_grad():
        final_q = agent.policy(torch.as_tensor(environment.initial_state())[None])[0].tolist()
    return SearchResult(pruned_heads, greedy_rewards, episodes, final_q)


def config_to_json(config: DQNConfig) -> dict:
    return {**asdict(config), "hidden_sizes": list(config.hidden_sizes)}
