"""`manip-stack train` and `manip-stack eval`: the verbs run the sessions and report bad input in one line."""

import json

import yaml

from robot_learning.cli.main import main


def test_train_then_eval_from_the_command_line(tiny_store, make_config, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(make_config(num_epochs=1).model_dump(mode="json")))
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_store), "--config", str(config), "--out", str(run),
                 "--device", "cpu", "--no-progress"]) == 0
    assert "trained 1 epochs" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(run / "policy.pt"), "--episodes", "1", "--envs", "1", "--videos", "0",
                 "--device", "cpu", "--no-progress"]) == 0
    assert "lift: " in capsys.readouterr().out
    report = json.loads((run / "eval" / "eval_report.json").read_text())
    assert report["n_episodes"] == 1 and (run / "eval" / "eval_summary.png").is_file()


def test_a_bad_config_is_one_line_naming_the_field(tiny_store, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("policy:\n  n_action_steps: 20\n")
    code = main(["train", "--dataset", str(tiny_store), "--config", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "n_action_steps=20" in err and str(config) in err
    assert not (tmp_path / "run").exists()
