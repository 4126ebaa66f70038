"""YAML that remembers where each value came from, so errors can name the file and the line.

Both kalkan.yaml and the policy document are read through :func:`load_located`; a validation
error's location (a path of keys and indexes) is turned back into a line by :class:`Located`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from policies.errors import SourceError

Path = tuple[str | int, ...]


@dataclass
class Located:
    """A parsed YAML document and the 1-based line of every mapping key and sequence item."""

    data: Any
    file: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


# libyaml's parser when PyYAML was built with it (Debian's and the wheels are): ten times faster
# on a policy with ten thousand list entries. Duplicate keys are caught in _build either way.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_located(text: str, file: str, error: type[SourceError] = SourceError) -> Located:
    """Parse ``text``; raise ``error`` with the file and line for YAML syntax errors."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "malformed YAML"
        raise error(f"not valid YAML: {problem}", file=file, line=line,
                    hint="check the indentation and quoting on that line") from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", file=file) from None
    located = Located(None, file)
    if root is not None:
        located.lines[()] = root.start_mark.line + 1
        located.data = _build(root, (), located, file, error)
    return located


def _build(node: yaml.Node, path: Path, located: Located, file: str,
           error: type[SourceError]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, file, error)
            if isinstance(key, (dict, list)):
                raise error("a mapping key must be a plain word", file=file,
                            line=key_node.start_mark.line + 1)
            if key in out:
                raise error(f"{key!r} appears twice in the same section", file=file,
                            line=key_node.start_mark.line + 1,
                            hint="keep one of them; YAML would silently drop the first")
            child = (*path, key)
            located.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, located, file, error)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            located.lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, located, file, error))
        return items
    return _scalar(node, file, error)


def _scalar(node: yaml.Node, file: str, error: type[SourceError]) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise error("expected a single value here", file=file, line=node.start_mark.line + 1)
    return _SCALARS.construct_object(node, deep=True)


_SCALARS = yaml.SafeLoader("")  # only its constructor is used, to type scalars as YAML 1.1 does
