"""Was a model's training data decontaminated against an eval set? Read from its lineage.

A model folder leads to its run.json (`train pretrain`: the shards and `--init-from`; `train
sft`/`dpo`: the data files and the base model), the shards and data files to their folders'
cards, and each card to the cards of its inputs, back to the raw sources. Every `decontaminate`
stage met on the way names the eval sources it was run against (card config `against`, with their
digests). `train eval` warns when an eval file it is given is not among them.
"""

from __future__ import annotations

import json
from pathlib import Path

RUN_JSON = "run.json"
CARD_JSON = "card.json"


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _run_json(model: Path) -> dict:
    """run.json of a run folder, of the run a checkpoint belongs to (RUN/checkpoints/step-N), or {}."""
    for folder in (model, model.parent.parent):
        run = _json(folder / RUN_JSON)
        if run:
            return run
    return {}


def decontaminations(model: str | Path) -> list[dict]:
    """Every `decontaminate` card in the model's lineage: {"card", "against", "digests"}."""
    found: list[dict] = []
    seen: set[Path] = set()
    todo: list[Path] = [Path(model)]
    while todo:
        path = todo.pop().resolve()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        folder = path if path.is_dir() else path.parent
        card = _json(folder / CARD_JSON)
        if card:
            if card.get("stage") == "decontaminate":
                config = card.get("config") or {}
                found.append({"card": str(folder), "against": config.get("against", []), "digests": config.get("against_digests", [])})
            for item in card.get("inputs") or []:
                if isinstance(item, dict) and item.get("path"):
                    todo += [folder / p.strip() for p in str(item["path"]).split(", ")]
        run = _run_json(folder) if folder.is_dir() else {}
        config = run.get("config") or {}
        for key in ("data", "init_from"):
            if isinstance(config.get(key), str):
                todo.append(Path(config[key]))
        for key in ("base_model",):
            if isinstance(run.get(key), str):
                todo.append(Path(run[key]))
        if isinstance(run.get("data"), list):
            todo += [Path(p) for p in run["data"] if isinstance(p, str)]
    return found


def covers(decontamination: dict, eval_file: str | Path) -> bool:
    """Whether a decontamination was run against this eval file (the file, a folder holding it, or
    an eval source with the same items)."""
    target = Path(eval_file).resolve()
    for source in decontamination.get("against", []):
        source = Path(source).resolve()
        if source == target or source in target.parents:
            return True
    return _items_digest(target) in set(decontamination.get("digests", []))


def _items_digest(path: Path) -> str | None:
    """The digest corpus.decontaminate records for an eval source with these items (None: unreadable)."""
    from corpus.decontaminate import items_digest
    from corpus.decontaminate.items import read_eval_items
    from corpus.errors import CorpusError

    try:
        return items_digest(read_eval_items(path))
    except CorpusError:
        return None


def undecontaminated(model: str | Path, eval_files: list[str]) -> list[str]:
    """The eval files that no decontamination in the model's lineage was run against."""
    runs = decontaminations(model)
    return [f for f in eval_files if not any(covers(d, f) for d in runs)]
