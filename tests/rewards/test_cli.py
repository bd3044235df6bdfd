"""`manip-stack reward ...` verbs, run in process against the built-in oracle."""

from __future__ import annotations

import json

from robot_learning.cli.main import main


def test_profiles_lists_names_and_key_variables_without_values(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-secret-value")
    assert main(["reward", "profiles"]) == 0
    out = capsys.readouterr().out
    assert "openai_gpt4o" in out and "$OPENAI_API_KEY set" in out and "sk-cli-secret-value" not in out


def test_ping_then_cache_inspection(tmp_path, capsys):
    cache = str(tmp_path / "c.sqlite")
    assert main(["reward", "ping", "--cache", cache]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["reward", "cache", "--cache", cache]) == 0
    listing = capsys.readouterr().out
    assert "1 answers" in listing
    key = listing.splitlines()[1].split()[0]
    assert main(["reward", "cache", "--cache", cache, "--key", key]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["answer"] == '{"ok": true}' and shown["request"]["model"] == "oracle"


def test_plan_verb_writes_an_accepted_plan(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["reward", "plan", "--task", "lift", "--demos", "2", "--random", "1", "--cache-mode", "off",
                 "--out", str(out)])
    assert code == 0 and "ACCEPTED" in capsys.readouterr().out
    assert [s["name"] for s in json.loads(out.read_text())["stages"]] == ["approach", "reach", "grasp", "lift"]
