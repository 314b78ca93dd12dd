"""Reading the user's YAML files safely, with one clear message for anything wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tjump.errors import InputError

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path, what: str) -> dict[str, Any]:
    """Parse a YAML mapping (never executing anything in it)."""
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InputError(f"{what} file {path} is not valid YAML: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what} file {path} cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise InputError(
            f"{what} file {path} must hold a mapping of fields, not {type(data).__name__}"
        )
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
