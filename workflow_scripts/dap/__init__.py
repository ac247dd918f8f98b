"""Differentiable architecture pruning with a FLOPs target (seed 004) and its structured baselines."""
