"""Evaluation environments: task specs and vectorized engines with one interface."""

from iwbc.envs.batch import BatchEngine
from iwbc.envs.engine import Engine, StepResult
from iwbc.envs.gymnasium_engine import GymnasiumEngine
from iwbc.envs.rollout import (
    RolloutResult,
    make_engine,
    resolve_engine,
    rollout_returns,
)
from iwbc.envs.specs import (
    SPECS,
    AntSpec,
    HalfCheetahSpec,
    HopperSpec,
    HumanoidSpec,
    HumanoidStandupSpec,
    InvertedDoublePendulumSpec,
    InvertedPendulumSpec,
    PusherSpec,
    ReacherSpec,
    SimState,
    SwimmerSpec,
    TaskSpec,
    Walker2dSpec,
    get_spec,
)

__all__ = [
    "SPECS",
    "AntSpec",
    "BatchEngine",
    "Engine",
    "GymnasiumEngine",
    "HalfCheetahSpec",
    "HopperSpec",
    "HumanoidSpec",
    "HumanoidStandupSpec",
    "InvertedDoublePendulumSpec",
    "InvertedPendulumSpec",
    "PusherSpec",
    "ReacherSpec",
    "RolloutResult",
    "SimState",
    "StepResult",
    "SwimmerSpec",
    "TaskSpec",
    "Walker2dSpec",
    "get_spec",
    "make_engine",
    "resolve_engine",
    "rollout_returns",
]
