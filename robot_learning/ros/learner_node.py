"""``learner_node``: PPO on the committed episodes of an online fine-tuning session, in its own process.

It never touches the control loop: it reads the episode store read-only every ``poll_s``, and after each update
saves ``online_state.pt`` atomically and then publishes ``{"path", "version", "episodes_consumed", "update_s",
"started_unix_s"}`` (std_msgs/String JSON, latched) on ``weights_topic``; ``finetune_policy_node`` swaps the
weights in at its next episode. Killed and restarted, it goes on from ``online_state.pt``.

On a machine with few cores an update must not take the control loop's CPU: the node runs reniced (``niceness``,
or Linux's ``SCHED_IDLE`` with ``idle_priority``), with ``torch_threads`` (1), and sleeps between the bursts of an
update (``yield_ratio``: after every optimiser step and episode read). docs/finetune_ros.md has what that held.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from rclpy.node import Node
from std_msgs.msg import String

from robot_learning.ros.finetune_policy_node import LATCHED_QOS
from robot_learning.sessions.online_actor import load_finetune_config
from robot_learning.sessions.online_learner import CpuYield, LearnerParams, OnlineLearner, lower_priority
from ros_support.node import declare_parameters, run_node

SUMMARY = "PPO on committed episodes of the store; publishes new residual weights between episodes."


class LearnerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("learner_node", **kwargs)
        self.params = declare_parameters(self, LearnerParams)

    def configure(self) -> None:
        from robot_learning.rl.base_policy import load_frozen_base

        p = self.params
        priority = lower_priority(p.niceness, p.idle_priority)  # never compete with the controller and the policy
        torch.set_num_threads(p.torch_threads)
        config = load_finetune_config(p.config)
        base = load_frozen_base(Path(p.checkpoint), config, device="cpu")  # for its action bounds
        self.learner = OnlineLearner(Path(p.out_dir), config, base.action_low, base.action_high,
                                     p.episodes_per_update, CpuYield(p.yield_ratio, p.max_yield_s))
        self._pub = self.create_publisher(String, p.weights_topic, LATCHED_QOS)
        if self.learner.state_path.exists():  # resumed: say what is current, for a policy node started after us
            self._announce({"version": self.learner.version, "episodes_consumed": self.learner.episodes_consumed})
        self.create_timer(p.poll_s, self._poll)
        self.get_logger().info(f"learning from {self.learner.store_path}: {self.learner.episodes_consumed} episodes "
                               f"consumed, an update every {p.episodes_per_update} new ones; {priority}, "
                               f"{p.torch_threads} torch thread(s), yield ratio {p.yield_ratio}")

    def _announce(self, fields: dict) -> None:
        self._pub.publish(String(data=json.dumps({"path": str(self.learner.state_path.resolve()), **fields})))

    def _poll(self) -> None:
        report = self.learner.poll()
        if report is not None:
            self._announce(asdict(report))


def main(args: list[str] | None = None) -> int:
    return run_node(LearnerNode, name="learner_node", summary=SUMMARY, params=LearnerParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
