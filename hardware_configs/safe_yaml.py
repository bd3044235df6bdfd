"""Read YAML files a person wrote without trusting them: bounded, strict, and with errors that stay short.

PyYAML's ``safe_load`` already refuses arbitrary Python objects, but it still lets a file:

- write a key twice in one mapping and keep the last value silently (a second ``max_linear_speed_m_s`` further
  down a cell file would win over the one a reviewer read);
- expand a "billion laughs" of aliases into a structure that is tiny on disk and exponential in memory the
  moment anything walks it (validation, a dump, a hash);
- nest deeply enough to exhaust the interpreter's stack, or be megabytes long and take seconds to parse.

:func:`read_yaml_mapping` closes those: the file's size, its expanded node count and its nesting depth are
bounded (so a refusal comes in well under a second), duplicate keys are errors naming both lines, bytes that
are not UTF-8 are an error naming the file, and no message ever quotes more than a short excerpt of the input.
Every config loader of the stack (cells, tasks, training and RL configs, model profiles) reads through it; ROS
parameter files are parsed by rcl when a node starts, and the tests read the shipped ones through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 64 * 1024  # the largest shipped config is 4 KiB; 64 KiB of YAML parses in well under a second
MAX_EXPANDED_NODES = 100_000  # nodes after resolving aliases; the shipped cell has about 300
MAX_DEPTH = 64  # nesting levels; the shipped files use 5
MAX_MESSAGE_CHARS = 400  # no error repeats more of the input than this


class UnsafeYamlError(ValueError):
    """A YAML file refused before its content was used; the message names the file and the reason."""


def _short(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 20] + f"... [{len(text) - limit + 20} chars cut]"


class _StrictSafeLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and deep nesting (keys merged with ``<<`` may be overridden)."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        """Stop at :data:`MAX_DEPTH` levels, long before Python's recursion limit (which takes a second)."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise UnsafeYamlError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class raises its own clear error for unhashable keys
            if key in seen:
                raise UnsafeYamlError(
                    f"key {_short(repr(key), 80)} is written twice in one mapping, at line {seen[key].line + 1} and "
                    f"line {key_node.start_mark.line + 1}; keep one (YAML would silently keep the last)"
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_graph(root: Node) -> None:
    """Refuse alias bombs, alias cycles and deep nesting on the node graph, before any Python object exists."""
    expanded: dict[int, int] = {}  # id(node) -> nodes it stands for once its aliases are expanded
    active: set[int] = set()

    def size(node: Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise UnsafeYamlError(f"nested more than {MAX_DEPTH} levels deep")
        key = id(node)
        if key in expanded:
            return expanded[key]
        if key in active:
            raise UnsafeYamlError("an alias refers to a node that contains it (a cycle)")
        if isinstance(node, ScalarNode):
            return 1
        active.add(key)
        total = 1
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_EXPANDED_NODES:
                raise UnsafeYamlError(
                    f"expands to more than {MAX_EXPANDED_NODES} nodes once its aliases are resolved "
                    "(an alias bomb?); write the values out or use fewer aliases"
                )
        active.discard(key)
        expanded[key] = total
        return total

    size(root, 0)


def parse_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document with the strict loader and the graph bounds; ``source`` names it in errors."""
    loader = _StrictSafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except UnsafeYamlError as exc:
            raise UnsafeYamlError(f"{source}: {exc}") from None
        except RecursionError:
            raise UnsafeYamlError(f"{source}: nested too deeply to parse (more than {MAX_DEPTH} levels)") from None
        if node is None:
            return None
        try:
            _check_graph(node)
            return loader.construct_document(node)
        except UnsafeYamlError as exc:
            raise UnsafeYamlError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UnsafeYamlError(f"{source}: not valid YAML: {_short(str(exc))}") from None
    finally:
        loader.dispose()


def read_yaml_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The file's text, refused when it is larger than ``max_bytes`` or not UTF-8."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UnsafeYamlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise UnsafeYamlError(
            f"{path}: larger than {max_bytes // 1024} KiB; a config this large is refused unread "
            "(is it the right file?)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeYamlError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Any YAML document from a file, read under the bounds above."""
    return parse_yaml_text(read_yaml_text(path, max_bytes), str(path))


def read_yaml_mapping(path: Path, max_bytes: int = MAX_FILE_BYTES, allow_empty: bool = False) -> dict[str, Any]:
    """A YAML file whose top level must be a mapping (every config of the stack is one)."""
    data = read_yaml(path, max_bytes)
    if data is None and allow_empty:
        return {}
    if not isinstance(data, dict):
        raise UnsafeYamlError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
