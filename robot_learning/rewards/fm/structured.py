"""Structured answers: JSON validated by a pydantic model, with a repair turn or two, never an exception.

A model's answer is parsed (code fences and prose around the object tolerated), validated with an optional
context (e.g. the labels that exist in this image), and on failure sent back with the validation error so
the model can fix it. After ``max_repairs`` failed repairs, or a transport failure, the result carries no
value and the reason: callers fall back (to the sparse reward) and the session goes on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from robot_learning.rewards.fm.client import FMClient, FMError

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


class AnswerError(ValueError):
    """An answer that cannot be used; the message is written for the model to read and fix."""


@dataclass
class StructuredResult(Generic[T]):
    value: T | None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    raw_answers: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0

    @property
    def ok(self) -> bool:
        return self.value is not None


def extract_json(text: str) -> Any:
    """The JSON object in an answer: bare, fenced (```json ... ```), or embedded in prose."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        start, end = stripped.find("{"), stripped.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(stripped[start : end + 1])
            except json.JSONDecodeError:
                pass
        raise AnswerError(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None


def validation_message(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        lines.append(f"- {where}: {err['msg']}")
    return "\n".join(lines)


def parse_answer(text: str, finish_reason: str | None, schema: type[T], context: dict[str, Any] | None = None) -> T:
    if finish_reason == "length":
        raise AnswerError("the answer was cut off at the token limit; answer again, shorter, with only the JSON object")
    data = extract_json(text)
    try:
        return schema.model_validate(data, context=context)
    except ValidationError as exc:
        raise AnswerError("the JSON does not match the required structure:\n" + validation_message(exc)) from None


def ask_structured(client: FMClient, messages: list[dict[str, Any]], schema: type[T],
                   context: dict[str, Any] | None = None, max_repairs: int = 2) -> StructuredResult[T]:
    """Ask, validate, repair up to ``max_repairs`` times; never raises for model or transport failures."""
    conversation = list(messages)
    result: StructuredResult[T] = StructuredResult(value=None)
    json_schema = schema.model_json_schema()
    for attempt in range(max_repairs + 1):
        result.attempts = attempt + 1
        try:
            answer = client.complete(conversation, schema=json_schema, schema_name=schema.__name__)
        except FMError as exc:
            result.errors.append(f"transport: {exc}")
            log.warning("model call failed, no answer: %s", exc)
            return result
        result.raw_answers.append(answer.content)
        result.prompt_tokens += answer.prompt_tokens
        result.completion_tokens += answer.completion_tokens
        result.cache_hits += int(answer.cached)
        try:
            result.value = parse_answer(answer.content, answer.finish_reason, schema, context)
            return result
        except AnswerError as exc:
            result.errors.append(str(exc))
            log.info("answer %d rejected: %s", attempt + 1, exc)
            conversation = [*conversation, {"role": "assistant", "content": answer.content[:4000]},
                            {"role": "user", "content": f"Your answer was rejected: {exc}\n"
                             "Reply with a corrected JSON object only."}]
    log.warning("no valid answer after %d attempts: %s", result.attempts, result.errors[-1])
    return result
