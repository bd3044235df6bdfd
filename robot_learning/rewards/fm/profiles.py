"""Named model profiles: which OpenAI-compatible server, which model, how patient, how expensive.

One YAML file per profile in ``configs/fm/`` (the file stem is the profile's name), or any ``.yaml`` path.
A profile names the *environment variable* that holds the API key, never the key itself, so profile files,
logs and caches can be shared without leaking credentials.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from configs import config_dir
from hardware_configs.safe_yaml import UnsafeYamlError, read_yaml_mapping

PROFILE_DIR = config_dir("fm")
LOCAL_PLACEHOLDER_KEY = "no-key-needed"  # local servers ignore the key, but the openai client wants one

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the field and the fix (never a key)."""


class Provider(str, Enum):
    openai = "openai"
    vllm = "vllm"
    llamacpp = "llamacpp"
    ollama = "ollama"
    other = "other"


class JsonMode(str, Enum):
    """How a server is asked for JSON: servers differ in what they accept."""

    json_schema = "json_schema"  # OpenAI, vLLM: response_format type json_schema with the schema
    json_object_schema = "json_object_schema"  # llama-cpp-python: type json_object plus a "schema" field
    json_object = "json_object"  # Ollama and others: any JSON object, schema only in the prompt
    none = "none"  # schema in the prompt only


class ModelProfile(BaseModel):
    """Everything the client needs to talk to one model on one server."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    provider: Provider = Provider.other
    base_url: str = Field(description="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    timeout_s: PositiveFloat = 60.0
    connect_timeout_s: PositiveFloat = 5.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    backoff_initial_s: NonNegativeFloat = 1.0
    backoff_max_s: NonNegativeFloat = 30.0
    max_retry_after_s: NonNegativeFloat = 60.0
    deadline_s: PositiveFloat = 300.0
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    max_tokens: Annotated[int, Field(ge=16)] = 1024
    temperature: NonNegativeFloat = 0.0
    seed: int | None = 0
    supports_images: bool = True
    json_mode: JsonMode = JsonMode.json_schema
    usd_per_million_input_tokens: NonNegativeFloat = 0.0
    usd_per_million_output_tokens: NonNegativeFloat = 0.0

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        return url.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not name.replace("_", "").isalnum():
            raise ValueError("api_key_env is the NAME of an environment variable (e.g. OPENAI_API_KEY), not a key")
        return name

    @model_validator(mode="after")
    def _backoff_ordered(self) -> ModelProfile:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"backoff_initial_s {self.backoff_initial_s} exceeds backoff_max_s {self.backoff_max_s}")
        return self

    def api_key(self) -> str:
        """The key from the environment (a placeholder for keyless local servers). Never log the result."""
        if self.api_key_env is None:
            return LOCAL_PLACEHOLDER_KEY
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ProfileError(f"profile {self.name}: environment variable {self.api_key_env} is not set or empty; "
                               f"export it with the API key for {self.base_url}")
        return key

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.usd_per_million_input_tokens
                + completion_tokens * self.usd_per_million_output_tokens) / 1e6


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str | Path, directory: Path = PROFILE_DIR, **overrides: object) -> ModelProfile:
    """Profile by name (``configs/fm/<name>.yaml``) or path; ``overrides`` replace fields (e.g. base_url in tests)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ProfileError(f"no model profile named {name_or_path!r}; available: {available_profiles(directory)}")
    try:
        raw = read_yaml_mapping(path)
    except UnsafeYamlError as exc:
        raise ProfileError(f"cannot read profile: {exc}") from None
    raw.setdefault("name", path.stem)
    raw.update(overrides)
    try:
        return ModelProfile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'profile'}: {e['msg']}" for e in exc.errors())
        raise ProfileError(f"{path}: {problems}") from None
