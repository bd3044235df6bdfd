"""Structured answers: validated JSON, repair turns with the error, then a clean failure."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from robot_learning.rewards.fm.fake_server import Reply
from robot_learning.rewards.fm.structured import ask_structured, extract_json


class Point(BaseModel):
    label: str
    height_m: float = Field(ge=0)


ASK = [{"role": "user", "content": "pick a point"}]


def test_valid_answer_is_accepted_first_time(serve, client_for):
    result = ask_structured(client_for(serve(lambda r: {"label": "P1", "height_m": 0.1})), ASK, Point)
    assert result.ok and result.value == Point(label="P1", height_m=0.1) and result.attempts == 1


def test_schema_violation_is_sent_back_with_the_error_and_repaired(serve, client_for):
    server = serve(lambda r: {"label": "P2", "height_m": 0.05})
    server.inject(Reply(content=json.dumps({"label": "P2", "height_m": -1})))
    result = ask_structured(client_for(server), ASK, Point)
    assert result.ok and result.attempts == 2
    repair_turn = server.requests[1].messages[-1]["content"]
    assert "height_m" in repair_turn and "greater than or equal to 0" in repair_turn
    assert server.requests[1].messages[-2] == {"role": "assistant", "content": '{"label": "P2", "height_m": -1}'}


def test_malformed_and_truncated_answers_are_repaired(serve, client_for):
    server = serve(lambda r: {"label": "P3", "height_m": 0.0})
    server.inject(Reply(content='{"label": "P3", "height'), Reply(content='{"label": "P3"', finish_reason="length"))
    result = ask_structured(client_for(server), ASK, Point, max_repairs=2)
    assert result.ok and result.attempts == 3
    assert "not valid JSON" in result.errors[0] and "cut off" in result.errors[1]


def test_after_the_repairs_the_result_is_empty_with_the_reason_not_an_exception(serve, client_for):
    server = serve(lambda r: {"nothing": "useful"})
    result = ask_structured(client_for(server), ASK, Point, max_repairs=2)
    assert not result.ok and result.attempts == 3 and len(server.requests) == 3
    assert "label" in result.errors[-1]


def test_transport_failure_gives_an_empty_result(serve, client_for):
    server = serve(lambda r: "x")
    server.inject(*[Reply(status=500)] * 2)
    result = ask_structured(client_for(server, max_retries=1), ASK, Point)
    assert not result.ok and result.errors[-1].startswith("transport:")


def test_json_is_found_in_fences_and_prose():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Sure! Here it is: {"a": 2} Hope that helps.') == {"a": 2}
