"""Reading YAML a user wrote (pipelines, filter and model configs, Markdown front matter), bounded.

Every such YAML goes through `load_yaml`: it refuses input larger than a size limit, nesting
deeper than a depth limit, and more nodes than a node limit, where an alias counts as the whole
node it points to. That last count is what stops an alias bomb ("billion laughs": ten aliases to
ten aliases to ...): a few hundred bytes compose to a small node graph, but everything downstream
that walks the loaded value (validation, JSON in card.json, a document's metadata) sees it
expanded. The count is made on the composed graph with one memo per node, so the bomb is never
expanded, and before composing, a pass over the parser's events bounds the depth and the number
of nodes written out, so the composed graph itself stays small.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from corpus.errors import CorpusError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int
    max_depth: int = 64
    max_nodes: int = 100_000  # counted with every alias expanded


FILE_LIMITS = YamlLimits(max_bytes=4 << 20)  # pipelines, filter and model configs
FRONT_MATTER_LIMITS = YamlLimits(max_bytes=256 << 10, max_nodes=10_000)  # per document, kept in its metadata


class YamlLimitError(yaml.YAMLError):
    """YAML past one of the limits; `line` is 1-based, or None when the limit is the size."""

    def __init__(self, problem: str, line: int | None = None):
        super().__init__(problem)
        self.problem = problem
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}" if self.line else self.problem


def load_yaml(text: str, limits: YamlLimits = FILE_LIMITS) -> Any:
    """`yaml.safe_load(text)` within `limits`; YamlLimitError past one, yaml.YAMLError if invalid."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_bytes:
        raise YamlLimitError(f"YAML of {size:,} bytes is longer than the limit of {limits.max_bytes:,} bytes")
    _check_events(text, limits)
    node = yaml.compose(text, Loader=_Loader)
    if node is None:
        return None
    _check_expanded(node, limits)
    loader = _Loader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_events(text: str, limits: YamlLimits) -> None:
    """Depth and node count as written, from the event stream (no tree is built)."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            nodes += 1
            if depth > limits.max_depth:
                raise YamlLimitError(f"YAML nested deeper than the limit of {limits.max_depth} levels", _line(event))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            nodes += 1
        if nodes > limits.max_nodes:
            raise YamlLimitError(f"YAML has more than the limit of {limits.max_nodes:,} nodes", _line(event))


def _check_expanded(root: yaml.Node, limits: YamlLimits) -> None:
    """Nodes and depth with every alias expanded, computed once per node (aliases share nodes)."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in done:
            return done[key]
        if key in open_nodes:  # an alias inside the node it names
            raise YamlLimitError("YAML alias refers to a node that contains it (a recursive structure)", _line(node))
        if isinstance(node, yaml.ScalarNode):
            return 1, 0
        open_nodes.add(key)
        count, depth = 1, 0
        children = (c for pair in node.value for c in pair) if isinstance(node, yaml.MappingNode) else node.value
        for child in children:
            child_count, child_depth = measure(child)
            count += child_count
            depth = max(depth, child_depth + 1)
            if count > limits.max_nodes:
                raise YamlLimitError(
                    f"YAML expands to more than the limit of {limits.max_nodes:,} nodes once its aliases are resolved",
                    _line(node),
                )
            if depth > limits.max_depth:
                raise YamlLimitError(
                    f"YAML nested deeper than the limit of {limits.max_depth} levels once its aliases are resolved",
                    _line(node),
                )
        open_nodes.discard(key)
        done[key] = (count, depth)
        return count, depth

    measure(root)


def _line(item) -> int | None:
    mark = getattr(item, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def read_yaml(path: str | Path, what: str = "file", limits: YamlLimits = FILE_LIMITS) -> Any:
    """A YAML file, loaded within `limits`; any problem is a one-line CorpusError naming the file."""
    path = Path(path)
    try:
        info = os.stat(path)  # before opening: opening a FIFO would wait for a writer
        if stat.S_ISDIR(info.st_mode):
            raise CorpusError(f"{path}: is a folder, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise CorpusError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such {what}") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > limits.max_bytes:
        raise CorpusError(f"{path}: larger than the limit of {limits.max_bytes:,} bytes for a {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 (byte {e.start})") from None
    try:
        return load_yaml(text, limits)
    except YamlLimitError as e:
        where = f" line {e.line}:" if e.line else ""
        raise CorpusError(f"{path}:{where} {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CorpusError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
