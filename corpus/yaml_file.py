"""Reading a YAML file a user wrote, with one-line errors that name the file (and line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from corpus.errors import CorpusError


def read_yaml(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such {what}") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CorpusError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
