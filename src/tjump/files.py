"""Reading the user's YAML files safely, with one clear message for anything wrong.

Every YAML file tjump reads (protocols, rigs) goes through `load_yaml`: a size limit before
parsing, a loader that refuses duplicate keys (a second `limits:` must never silently replace
the first), and a bounded walk of what was parsed that refuses alias bombs, deep nesting and
non-finite numbers (`.inf`, `.nan`) before any model sees the data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode

from tjump.errors import InputError

M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 1_000_000  # a protocol or rig file is a few kB; 1 MB is far beyond any real one
MAX_VALUES = 200_000  # scalars and containers after aliases are expanded
MAX_DEPTH = 40  # nesting of mappings and lists
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: let the base class say so
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (each key may appear once)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } outside quotes and comments (a cheap look before
    parsing: the parser takes seconds to refuse thousands of levels)."""
    depth = deepest = 0
    quote = ""
    comment = False
    for ch in text:
        if ch == "\n":
            comment, quote = False, ""  # an apostrophe in plain text ends with its line
            depth = max(depth, 0)
        elif comment:
            continue
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with duplicate keys refused; `source` names it in messages."""
    if _flow_depth(text) > MAX_DEPTH:
        raise InputError(f"{source} nests [ ] or {{ }} deeper than {MAX_DEPTH}")
    try:
        loader = _UniqueKeyLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise InputError(f"{source} is not valid YAML: {e}") from e
    except RecursionError as e:
        raise InputError(f"{source} is nested too deeply to be read") from e


def check_tree(data: Any, source: str) -> None:
    """Refuse data that expands beyond MAX_VALUES values (an alias bomb), nests deeper than
    MAX_DEPTH, or holds a number that is not finite; each message names the field."""
    count = 0
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise InputError(
                f"{source} expands to more than {MAX_VALUES} values (aliases repeated?); "
                "write it out plainly"
            )
        if depth > MAX_DEPTH:
            raise InputError(f"{source}: {where or '(top level)'} nests deeper than {MAX_DEPTH}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{source}: {where or '(top level)'}: {value} is not a finite number")
        if isinstance(value, dict):
            for key, item in value.items():
                stack.append((item, f"{where}.{key}" if where else str(key), depth + 1))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                stack.append((item, f"{where}.{i}" if where else str(i), depth + 1))


def read_text(path: Path, what: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of a user's file, refused clearly if missing, a folder, too big or not UTF-8."""
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} file {path} is not a file (a folder?)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"{what} file {path} is {size} bytes; at most {max_bytes} are accepted"
            )
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what} file {path} cannot be read: {e}") from e


def load_yaml(path: Path, what: str) -> dict[str, Any]:
    """Parse a YAML mapping (never executing anything in it), within the limits above."""
    source = f"{what} file {path}"
    text = read_text(path, what)
    if "\x00" in text:
        raise InputError(f"{source} holds a NUL character")
    data = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise InputError(f"{source} must hold a mapping of fields, not {type(data).__name__}")
    check_tree(data, source)
    return data


def describe_errors(error: ValidationError) -> str:
    """One line per problem: the field's dotted path and what is wrong with it."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def validate(model: type[M], data: dict[str, Any], source: str) -> M:
    """Build `model` from `data`, or raise one `InputError` naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InputError(f"{source} is invalid:\n{describe_errors(e)}") from e
