"""Foundation-model access for rewards: profiles, one OpenAI-compatible client, cache, structured answers."""

from robot_learning.rewards.fm.cache import ResponseCache
from robot_learning.rewards.fm.client import CacheMode, ChatAnswer, FMCacheMiss, FMClient, FMError, UsageMeter
from robot_learning.rewards.fm.profiles import ModelProfile, ProfileError, available_profiles, load_profile
from robot_learning.rewards.fm.structured import StructuredResult, ask_structured

__all__ = [
    "CacheMode", "ChatAnswer", "FMCacheMiss", "FMClient", "FMError", "ModelProfile", "ProfileError",
    "ResponseCache", "StructuredResult", "UsageMeter", "ask_structured", "available_profiles", "load_profile",
]
