"""Progressive stacking (Gong et al. 2019, "Efficient Training of BERT by Progressively Stacking"), an option of
Bort's pretraining (params.yaml bort.pretrain.stacking):

    stacking = {"stages": k, "switch_steps": [s_1, ..., s_k]}
    depth_schedule(L, stacking)      # [(0, L / 2^k), (s_1, L / 2^(k-1)), ..., (s_k, L)]
    copied_from = stack_encoder(model)   # after step s_j: layer L' + i becomes a copy of layer i (L' layers before)
    regroup_optimizer(optimizer, parameter_groups(model, weight_decay), copied_from)

The student starts with L / 2^k encoder layers; after optimizer step s_j its encoder is doubled, until it has the
full depth L of the chosen architecture. `stages: 0` (no switch steps) trains the full depth from the start.

Importing this module does not import torch: params.py validates the option with `stacking_error` while the
Snakefile is parsed.
"""
from __future__ import annotations

import copy


def stacking_error(stacking: dict, steps: int, depths, depths_from: str) -> str | None:
    """What is wrong with a stacking option for a run of `steps` steps whose chosen depth is one of `depths`
    (`depths_from` says where they come from; None: nothing wrong). The messages name the sub-key; callers prefix
    the option's own key."""
    stages, switch_steps = stacking["stages"], stacking["switch_steps"]
    if len(switch_steps) != stages:
        return f"'switch_steps' has {len(switch_steps)} steps but 'stages' is {stages}: give one switch per stage"
    if any(later <= earlier for earlier, later in zip(switch_steps, switch_steps[1:])):
        return f"'switch_steps' {switch_steps} must be strictly increasing"
    outside = [step for step in switch_steps if not 0 < step < steps]
    if outside:
        return f"'switch_steps' {outside} must lie inside (0, {steps}), strictly between 0 and the run's steps"
    indivisible = sorted({depth for depth in depths if depth % 2 ** stages})
    if indivisible:
        return (f"{stages} stages start from depth / {2 ** stages}, but {depths_from} "
                f"{', '.join(map(str, indivisible))} is not divisible by {2 ** stages}")
    return None


def depth_schedule(full_depth: int, stacking: dict) -> list[tuple[int, int]]:
    """(first step after which the depth holds, depth) pairs: (0, L / 2^k), then the depth doubled at each switch."""
    start_depth = full_depth // 2 ** stacking["stages"]
    return [(0, start_depth), *((step, start_depth * 2 ** (index + 1))
                                for index, step in enumerate(stacking["switch_steps"]))]


def depth_after(step: int, full_depth: int, stacking: dict) -> int:
    """The encoder's depth once `step` optimizer steps are done, the switch at `step` included (a checkpoint
    written at a switch step holds the stacked model)."""
    return [depth for start, depth in depth_schedule(full_depth, stacking) if start <= step][-1]


def stack_encoder(model) -> dict:
    """Double the encoder in place (Gong et al.'s Stack): with L' layers, layer L' + i becomes an exact copy of
    layer i. Returns {new parameter: the parameter it was copied from}, for the optimizer's state."""
    layers = model.base_model.encoder.layer  # ModuleList of L' layers
    depth = len(layers)
    copied_from = {}
    for index in range(depth):
        # The copy shares the model's config object, as every built layer does (an attention implementation set on
        # the model later reaches it too); everything else, weights included, is copied.
        layer = copy.deepcopy(layers[index], memo={id(model.config): model.config})
        for module in layer.modules():
            if hasattr(module, "layer_idx"):  # the position the layer would have had in a model built this deep
                module.layer_idx = depth + index
        copied_from.update(zip(layer.parameters(), layers[index].parameters()))
        layers.append(layer)
    model.config.num_hidden_layers = 2 * depth
    return copied_from


def regroup_optimizer(optimizer, parameter_groups: list[dict], copied_from: dict) -> None:
    """The optimizer over the stacked model's parameters, rebuilt in place: the training loop and the LR scheduler
    hold this object, so it is kept and its groups get their new parameter lists.

    `parameter_groups`: core.training.parameter_groups of the stacked model, the order a freshly built optimizer
    has, so that a run resumed after the switch (which builds its optimizer from the stacked model) reads the saved
    state into the same positions. State: the parameters kept keep theirs; a new layer's parameter starts from a
    copy of its source's AdamW state (moments and step count), so that the copy is updated as its source would be,
    rather than with the large first steps of a zeroed Adam state at a mid-run learning rate (our choice; the
    paper does not say). The LR schedule is not touched: it goes on over the whole run's steps, as Gong et al.
    keep training with the same schedule (no new warm-up)."""
    if len(parameter_groups) != len(optimizer.param_groups):
        raise ValueError(f"{len(parameter_groups)} parameter groups for an optimizer of "
                         f"{len(optimizer.param_groups)}")
    grouped = {id(parameter) for group in parameter_groups for parameter in group["params"]}
    if not all(id(parameter) in grouped for parameter in copied_from):
        raise ValueError("the parameter groups do not hold the new layers: read them after stacking")
    for group, rebuilt in zip(optimizer.param_groups, parameter_groups):
        group["params"] = list(rebuilt["params"])
    for parameter, source in copied_from.items():
        if source in optimizer.state:
            optimizer.state[parameter] = {name: value.clone() if hasattr(value, "clone") else copy.deepcopy(value)
                                          for name, value in optimizer.state[source].items()}
