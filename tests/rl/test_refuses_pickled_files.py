"""Nothing user-supplied is unpickled: a torch file carrying a pickled object whose unpickling would run a
command is refused by every loader (base checkpoint, combined base+residual, residual warm start, fine-tuning
resume, online session state) with an error naming the file, and the command never runs."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from _online_worker import make_session
from test_finetune_session import tiny_finetune

from robot_learning.runtime.safe_load import UnreadableFileError, UnsafeFileError, load_plain, save_plain

REFUSED = r"refused: this .* contains pickled Python objects \(it refers to (posix|os)\.system\)"


class Payload:
    """Unpickling this runs ``touch <marker>``: what an attacker's checkpoint would do with a worse command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload_ran"


def plant(path: Path, **contents) -> Path:
    """A file shaped like the one a loader expects, with the payload hidden in one of its values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(contents, path)
    return path


def assert_refused_without_running(error: pytest.ExceptionInfo, path: Path, marker: Path) -> None:
    assert str(path) in str(error.value)
    assert not marker.exists(), "the pickled payload ran"


def test_the_payload_is_live_so_the_refusals_below_mean_something(tmp_path, marker):
    path = plant(tmp_path / "evil.pt", residual=Payload(marker))
    torch.load(path, weights_only=False)  # what the loaders must never do
    assert marker.exists()


def test_a_base_checkpoint_with_a_pickled_object_is_refused(tmp_path, marker):
    from robot_learning.policies.diffusion.checkpoint import CHECKPOINT_FORMAT, DiffusionPolicy, load_checkpoint

    path = plant(tmp_path / "policy.pt", format=CHECKPOINT_FORMAT, version=1, model=Payload(marker))
    for load in (load_checkpoint, lambda p: DiffusionPolicy.from_checkpoint(p, device="cpu")):
        with pytest.raises(UnsafeFileError, match=REFUSED) as error:
            load(path)
        assert_refused_without_running(error, path, marker)


def test_a_combined_base_plus_residual_checkpoint_with_a_pickled_object_is_refused(tmp_path, marker):
    from robot_learning.rl.combined import COMBINED_FORMAT
    from robot_learning.runtime.loading import load_policy

    path = plant(
        tmp_path / "base_plus_residual.pt",
        format=COMBINED_FORMAT,
        version=1,
        base={"model": {}},
        residual=Payload(marker),
    )
    with pytest.raises(UnsafeFileError, match=REFUSED) as error:
        load_policy(path, device="cpu")
    assert_refused_without_running(error, path, marker)


def test_an_init_residual_with_a_pickled_object_is_refused(tmp_path, marker):
    from robot_learning.rl.config import ResidualConfig
    from robot_learning.rl.residual import ResidualPolicy
    from robot_learning.rl.warm_start import load_trained_residual

    path = plant(tmp_path / "residual_last.pt", residual={"actor.log_std": Payload(marker)}, env_steps=1)
    config = ResidualConfig(obs_keys=["position"])
    with pytest.raises(UnsafeFileError, match=REFUSED) as error:
        load_trained_residual(path, ResidualPolicy(3, 2, config), config)
    assert_refused_without_running(error, path, marker)


def test_a_finetune_resume_state_with_a_pickled_object_is_refused_before_the_twins_start(
    state_base,
    tmp_path,
    marker,
    monkeypatch,
):
    from robot_learning.sessions import finetune as session
    from robot_learning.sessions.finetune import finetune

    monkeypatch.setattr(session, "make_twins", lambda *a, **k: pytest.fail("the twins started"))
    path = plant(tmp_path / "run" / "residual_last.pt", residual=Payload(marker), iteration=1)
    with pytest.raises(UnsafeFileError, match=REFUSED) as error:
        finetune(state_base, tmp_path / "run", tiny_finetune(2), progress=False)
    assert_refused_without_running(error, path, marker)


def test_an_online_session_state_with_a_pickled_object_is_refused(tmp_path, marker):
    path = plant(tmp_path / "online" / "online_state.pt", residual=Payload(marker), episodes_consumed=0)
    with pytest.raises(UnsafeFileError, match=REFUSED) as error:
        make_session(str(tmp_path / "online"))
    assert_refused_without_running(error, path, marker)


def test_an_online_session_refuses_an_init_residual_with_a_pickled_object(tmp_path, marker):
    path = plant(tmp_path / "twin" / "online_state.pt", residual=Payload(marker))
    with pytest.raises(UnsafeFileError, match=REFUSED) as error:
        make_session(str(tmp_path / "robot"), init_residual=path)
    assert_refused_without_running(error, path, marker)


def test_a_file_that_is_not_a_torch_file_is_refused_as_unreadable(tmp_path):
    for name, data in {"text.pt": b"not a checkpoint", "truncated.pt": b"PK\x03\x04" + b"\0" * 20}.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnreadableFileError, match=rf"{name} is not a readable residual"):
            load_plain(tmp_path / name, "residual")
    with pytest.raises(FileNotFoundError):
        load_plain(tmp_path / "missing.pt")


def test_what_the_stack_saves_is_refused_at_save_time_if_a_weights_only_load_would_refuse_it(tmp_path):
    path = tmp_path / "state.pt"
    with pytest.raises(TypeError, match=r"\['ppo'\]\['scale'\] is a numpy\.float64"):
        save_plain({"ppo": {"scale": np.float64(1.0)}}, path)
    with pytest.raises(TypeError, match=r"\['obs'\] is a numpy\.ndarray"):
        save_plain({"obs": np.zeros(3)}, path)
    assert not path.exists()  # nothing half-written either

    plain = {"w": torch.zeros(2), "meta": {"steps": 3, "betas": (0.9, 0.99), "keys": ["a"], "lr": None}}
    save_plain(plain, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["meta"] == plain["meta"] and torch.equal(loaded["w"], plain["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left behind
