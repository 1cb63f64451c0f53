"""Gymnasium-Robotics' joint accessors under MuJoCo 3.12 and later: Kitchen builds again.

MuJoCo 3.12 moved to pybind11 3.1, whose enums compare unequal to NumPy integers when the enum
is on the left: ``mjJNT_HINGE == np.int32(3)`` is False, and so is ``model.jnt_type[j] in
(mjJNT_HINGE, mjJNT_SLIDE)``, as tuple membership puts the tuple's item on the left.
Gymnasium-Robotics 1.4.2 (the newest release on PyPI, 2026-12) asserts exactly that in the
four joint qpos / qvel getters and setters of ``gymnasium_robotics.utils.mujoco_utils``, so
``FrankaKitchen-v1``, the env of Minari's D4RL Kitchen datasets, fails a bare assert as it
builds. Gymnasium-Robotics fixed it after that release (PR #330: Python ints compared). Until a
release has the fix, that module alone sees MuJoCo with its joint types as Python ints: its own
code runs unchanged, with the comparison the fix makes; nothing else in it reads them. On a
MuJoCo whose enums compare equal to NumPy integers nothing is changed.
"""

from __future__ import annotations

import types
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.registration import EnvSpec

ROBOTICS_PACKAGE = "gymnasium_robotics"


class _MujocoWithIntJointTypes(types.ModuleType):
    """``mujoco`` itself, except ``mjtJoint``, whose members are Python ints."""

    def __init__(self) -> None:
        super().__init__(mujoco.__name__, mujoco.__doc__)
        members = mujoco.mjtJoint.__members__.items()
        self.mjtJoint = types.SimpleNamespace(**{name: int(value) for name, value in members})

    def __getattr__(self, name: str) -> Any:
        return getattr(mujoco, name)


def enum_equals_numpy_int() -> bool:
    """Whether this MuJoCo's enums compare equal to a NumPy integer of their value."""
    hinge = mujoco.mjtJoint.mjJNT_HINGE
    return bool(hinge == np.int32(int(hinge)))


def fix_joint_type_checks() -> None:
    """Give Gymnasium-Robotics' ``mujoco_utils`` Python-int joint types where this MuJoCo
    needs it (above); once per process, and nothing where Gymnasium-Robotics is missing."""
    if enum_equals_numpy_int():
        return
    try:
        from gymnasium_robotics.utils import mujoco_utils
    except ImportError:  # the env's own build then says what is missing
        return
    if not isinstance(mujoco_utils.mujoco, _MujocoWithIntJointTypes):
        mujoco_utils.mujoco = _MujocoWithIntJointTypes()


def entry_point_package(spec: EnvSpec | None) -> str | None:
    """The top-level package ``spec``'s entry point names (``module.path:Class``), or None
    where it names none (no spec, or a callable)."""
    entry = spec.entry_point if spec is not None else None
    return entry.partition(":")[0].partition(".")[0] if isinstance(entry, str) else None


def is_robotics_env(spec: EnvSpec | None) -> bool:
    """Whether ``spec``'s env is Gymnasium-Robotics' (Adroit, mazes, Kitchen, Fetch, hands)."""
    return entry_point_package(spec) == ROBOTICS_PACKAGE
