"""Offline-RL baselines (TD3+BC, IQL, AWAC), trained by the same jit(vmap(scan)) engine as iw-BC."""
