"""Which stages of a run take a CPU hours, told before they start.

The defaults are the paper's and CORL's protocols, sized for a GPU: whole-episode batches of
up to 1,000 steps for the BC family, 1M updates for the baselines. A CPU user should hear it
before the first update, with the settings that make each stage minutes, not after the first
hour. ``iwbc run`` words the remedy as flags and ``iwbc bench`` as suite keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from iwbc.agents.registry import METHODS
from iwbc.bench.suites import Suite

# Work from which a stage takes a CPU about an hour or more: seed-rows of BC-family batches
# summed over the updates (~6 µs each for the 3x256 policy on the 2-core box: 4 s an update of
# 5 seeds x 128 x 1,000 rows), and seed-updates of a baseline (150-250 a second there;
# results/perf/train_throughput.md, algo_throughput.md).
SLOW_ON_CPU_SEED_ROWS = 5 * 10**8
SLOW_ON_CPU_SEED_UPDATES = 500_000


@dataclasses.dataclass(frozen=True)
class SlowStages:
    """The stages that take a CPU an hour or more: BC-family stages (a method or the stage it
    starts from) with their configs, and baselines with their updates, at ``seeds`` seeds
    trained together, on episodes of up to ``longest`` steps."""

    bc_family: Mapping[str, Any]
    offline_rl: Mapping[str, int]
    seeds: int
    longest: int

    def notes(self, bc_family_remedy: str, offline_rl_remedy: str) -> list[str]:
        """One line for the slow BC-family stages and one for the slow baselines (none for a
        family with none), each ending in the remedy worded for the caller (flags, suite keys),
        e.g. ``td3_bc, iql train for 1,000,000 updates with 5 seeds: hours each on a CPU; …``."""
        notes = []
        if self.bc_family:
            notes.append(f"{self._bc_family_text()}: hours on a CPU; {bc_family_remedy}")
        if self.offline_rl:
            notes.append(f"{self._offline_rl_text()}: hours each on a CPU; {offline_rl_remedy}")
        return notes

    def _bc_family_text(self) -> str:
        """e.g. ``bc (128 whole episodes of up to 1,000 steps a batch, 10,000 updates) with 5
        seeds``."""
        stages = ", ".join(
            f"{name} ({config.batch_size} "
            + (
                f"whole episodes of up to {self.longest:,} steps"
                if config.window is None
                else f"windows of {config.window} steps"
            )
            + f" a batch, {config.steps:,} updates)"
            for name, config in self.bc_family.items()
        )
        return f"{stages} with {_seeds(self.seeds)}"

    def _offline_rl_text(self) -> str:
        """e.g. ``td3_bc, iql train for 1,000,000 updates with 5 seeds``."""
        verb = "trains" if len(self.offline_rl) == 1 else "train"
        return (
            f"{', '.join(self.offline_rl)} {verb} for {max(self.offline_rl.values()):,} updates "
            f"with {_seeds(self.seeds)}"
        )


def slow_stages(
    suite: Suite, dataset_id: str, methods: Sequence[str], seeds: int, longest: int
) -> SlowStages:
    """The stages of ``methods`` (and of the stages they start from) on ``dataset_id`` that
    take a CPU an hour or more at ``suite``'s settings: a BC-family stage by its seeds ×
    updates × batch rows (whole episodes counted at the ``longest`` episode's steps), a
    baseline by its seeds × updates."""
    starts = {METHODS[m].start for m in methods if METHODS[m].start is not None}
    trained = set(methods) | starts
    configs = {m: suite.agent_config(m, dataset_id) for m in METHODS if m in trained}
    bc_family = {
        m: c
        for m, c in configs.items()
        if METHODS[m].family == "bc"
        and seeds * c.steps * c.batch_size * (c.window or longest) >= SLOW_ON_CPU_SEED_ROWS
    }
    offline_rl = {
        m: c.steps
        for m, c in configs.items()
        if METHODS[m].family == "offline_rl" and seeds * c.steps >= SLOW_ON_CPU_SEED_UPDATES
    }
    return SlowStages(bc_family, offline_rl, seeds, longest)


def _seeds(count: int) -> str:
    return f"{count} seed{'' if count == 1 else 's'}"
