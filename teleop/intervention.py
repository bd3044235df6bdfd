"""Human interventions during online fine-tuning (HIL-SERL): the operator overrides the policy with a device.

The RL loop calls :func:`intervention_action` every policy step with the observation, the device and the
policy's action; steps where it returns ``intervening=True`` belong in the intervention buffer (sampled
50/50 with online data in HIL-SERL). A teleop collection session and an RL session use the same devices.
"""

from __future__ import annotations

import numpy as np

from controllers.actions import GRIPPER_DIM, hold_action
from teleop.core import DeviceStatus, TeleopDevice


def intervention_action(obs: dict[str, np.ndarray], device: TeleopDevice, now_s: float,
                        policy_action: np.ndarray | None = None, gripper_max_width_m: float = 0.085,
                        ) -> tuple[np.ndarray, bool]:
    """One tick of human supervision during online fine-tuning (HIL-SERL style): ``(action, intervening)``.

    While the operator deflects the device or holds INTERVENE, the device's action replaces the policy's and
    ``intervening`` is True (those steps go to the intervention buffer). When an intervention starts, the
    device adopts the gripper state the policy commanded (or, without one, the measured opening), so taking
    over never snaps the gripper. A disconnected device stops the arm: a zero-delta hold, not intervening.
    """
    was_intervening = device.intervening
    cmd = device.poll(now_s)
    if policy_action is not None:
        gripper = float(policy_action[GRIPPER_DIM])
    else:
        gripper = 1.0 if float(obs["gripper_width"][0]) < 0.5 * gripper_max_width_m else 0.0
    if cmd.status is DeviceStatus.disconnected:
        return hold_action(gripper), False
    if cmd.intervening:
        if not was_intervening:
            device.sync_gripper(gripper)
        action = cmd.action.copy()
        action[GRIPPER_DIM] = device.gripper_closure
        return action, True
    if policy_action is None:
        return hold_action(gripper), False
    return np.asarray(policy_action, np.float32), False
