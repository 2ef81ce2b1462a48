"""Reading what users write: YAML/JSON files and ``key=value`` options, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import NasforgeError


def load_yaml(path: str | Path, what: str, error: type[NasforgeError] = NasforgeError) -> Any:
    """The data in a YAML or JSON file (JSON is a subset of YAML); ``what`` names the file in errors."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise error(f"{what} {p} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise error(f"{what} {p} is not valid YAML/JSON: {str(e).splitlines()[0]}") from None


def parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` options; a value is read as JSON when it can be (numbers, lists, true), else as a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise NasforgeError(f"{what} option {item!r} must look like key=value")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out
