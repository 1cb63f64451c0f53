"""Offline-RL baselines (TD3+BC, IQL), trained by the same jit(vmap(scan)) engine as iw-BC."""
