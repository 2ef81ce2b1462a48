"""Reading what users write: YAML/JSON files and ``key=value`` options, with one-line errors.

Whatever the text holds, the readers return data or raise the caller's ``NasforgeError`` (one line, saying where), never
another exception: PyYAML's own errors, dates such as ``2001-13-01`` (a ``ValueError`` inside PyYAML), nesting deep
enough to exhaust the stack, recursive aliases and alias "bombs" that would expand to millions of nodes are all
refused. A key given twice in one mapping is refused too (PyYAML silently keeps the last one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import NasforgeError

# nodes a document may expand to once its aliases are followed: a search file has tens; a "billion laughs" has 10^9
MAX_NODES = 100_000
_MERGE = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (merge keys ``<<`` may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class says so in its own words
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


@dataclass
class Document:
    """The data of a YAML/JSON text, with the line on which each key and item starts (1-based), by path."""

    data: Any
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, path: Sequence[Any]) -> int | None:
        """The line of the longest prefix of ``path`` (keys compared as text) that the document holds."""
        p = tuple(str(x) for x in path)
        for n in range(len(p), -1, -1):
            if p[:n] in self.lines:
                return self.lines[p[:n]]
        return None


def _describe(e: Exception) -> str:
    """One line for a parse error: where (line, column) and what."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        what = " ".join(x for x in (e.context, e.problem) if x) or type(e).__name__
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return " ".join(f"{where}{what}".split())
    if isinstance(e, yaml.reader.ReaderError):
        return f"character U+{e.character:04X} at position {e.position} is not allowed in YAML"
    if isinstance(e, RecursionError):
        return "it is nested too deeply"
    return " ".join(str(e).split()) or type(e).__name__


def _walk(node: yaml.Node, path: tuple[str, ...], lines: dict, sizes: dict[int, int], busy: set[int]) -> int:
    """Record the line of every key and item below ``node``; return how many nodes it expands to (aliases followed)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in busy:
        raise NasforgeError("an alias refers to a node that holds it (a recursive structure)")
    busy.add(id(node))
    n = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*path, str(k.value)) if isinstance(k, yaml.ScalarNode) else None
            if key is not None:
                lines.setdefault(key, k.start_mark.line + 1)
            n += _walk(k, path + ("?",), {}, sizes, busy) + _walk(v, key or path + ("?",), lines, sizes, busy)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            lines.setdefault((*path, str(i)), v.start_mark.line + 1)
            n += _walk(v, (*path, str(i)), lines, sizes, busy)
    busy.discard(id(node))
    sizes[id(node)] = n
    if n > MAX_NODES:
        raise NasforgeError(f"it expands to more than {MAX_NODES:,} values (aliases that multiply)")
    return n


def parse_yaml(text: str, what: str, error: type[NasforgeError] = NasforgeError) -> Document:
    """The data in YAML or JSON ``text`` (JSON is a subset of YAML) with its lines; ``what`` names it in errors."""
    loader = None
    try:
        loader = _UniqueKeyLoader(text)  # reads the text at once: it may refuse a control character already
        node = loader.get_single_node()
        lines: dict[tuple[str, ...], int] = {}
        if node is not None:
            _walk(node, (), lines, {}, set())
        data = loader.construct_document(node) if node is not None else None
    except NasforgeError as e:
        raise error(f"{what} is refused: {e}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as e:
        # ValueError: PyYAML builds dates and numbers with Python constructors (2001-13-01, !!int x)
        raise error(f"{what} is not valid YAML/JSON: {_describe(e)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return Document(data, lines)


def read_yaml(path: str | Path, what: str, error: type[NasforgeError] = NasforgeError) -> Document:
    """``parse_yaml`` of a file, with one-line errors for a file that is missing, a folder, unreadable or not text."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {p} is a folder; give the path of a YAML or JSON file") from None
    except UnicodeDecodeError:
        raise error(f"{what} {p} is not UTF-8 text; give a YAML or JSON file") from None
    except OSError as e:
        raise error(f"{what} {p} cannot be read: {e.strerror or e}") from None
    return parse_yaml(text, f"{what} {p}", error)


def load_yaml(path: str | Path, what: str, error: type[NasforgeError] = NasforgeError) -> Any:
    """The data in a YAML or JSON file; ``what`` names the file in errors."""
    return read_yaml(path, what, error).data


def parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` options; a value is read as JSON when it can be (numbers, lists, true), else as a string.
    A key may be given once."""
    out: dict[str, Any] = {}
    for item in items or []:
        k, eq, v = str(item).partition("=")
        k = k.strip()
        if not eq or not k:
            raise NasforgeError(f"{what} option {item!r} must look like key=value")
        if k in out:
            raise NasforgeError(f"{what} option {k!r} is given twice; give each option once")
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, RecursionError):
            out[k] = v
    return out

