"""Instruction and preference data files: format detection, validation, one normal form.

SFT rows, whatever their file format, become one of three normal forms:

    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}   a conversation
    {"prompt": str, "completion": str}                                         a plain completion
    {"text": str}                                                              plain text (all trained)

Accepted SFT shapes: alpaca (`instruction`, optional `input`, `output`, optional `system` and
`history`), sharegpt (`conversations` of `from` human/gpt/system and `value`), messages (`role`,
`content`; content may be a list of text parts), prompt/completion (strings, or message lists), and
plain `text`. A file holds one shape, detected from its first row; a row of another shape or with a
bad field is an error naming FILE:LINE, or is skipped and counted when the caller allows it.

Preference rows become `{"prompt", "chosen", "rejected"}`, either all strings or with `prompt` a
message list and `chosen`/`rejected` one-assistant-message lists. Accepted: prompt/chosen/rejected
(plain or conversational), chosen/rejected message lists with a shared prefix (and llama-factory's
`chosen_messages`/`rejected_messages`), sharegpt `conversations` with `chosen`/`rejected` turns, and
hh-rlhf dialogue strings ("\\n\\nHuman: ... \\n\\nAssistant: ...").
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from train.errors import TrainError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
MESSAGE_ROLES = {"system", "user", "assistant"}


class RowError(ValueError):
    """What is wrong with one row; the reader adds FILE:LINE."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class LoadReport:
    """What was read: rows per detected format, and rows skipped by reason (with --skip-invalid)."""

    formats: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    first_skipped: list[str] = field(default_factory=list)  # a few FILE:LINE: messages to show the user

    def as_dict(self) -> dict:
        return {"formats": dict(self.formats), "skipped": dict(self.skipped), "first_skipped": self.first_skipped}


# ---------------------------------------------------------------- reading rows with their line numbers


def _open_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TrainError(f"{path}: no such data file") from None
    except OSError as e:
        raise TrainError(f"{path}: cannot read: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TrainError(f"{path}:{line}: invalid UTF-8 at byte {e.start}") from None


def iter_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line, row) of a JSON Lines file, or of each element of a JSON array file (its first line).

    A line that is not JSON is yielded as a RowError so the caller can skip it or stop.
    """
    path = Path(path)
    text = _open_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array: find where each element starts, for line numbers
        decoder = json.JSONDecoder()
        pos = text.index("[") + 1
        line = text.count("\n", 0, pos) + 1
        last = pos
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text):
                raise TrainError(f"{path}:{line}: the JSON array is never closed")
            if text[pos] == "]":
                return
            line += text.count("\n", last, pos)
            last = pos
            try:
                row, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                # An array cannot be resynchronised after a broken element: stop here.
                raise TrainError(f"{path}:{text.count(chr(10), 0, e.pos) + 1}: not valid JSON ({e.msg})") from None
            yield line, row
    for number, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        try:
            yield number, json.loads(raw_line)
        except json.JSONDecodeError as e:
            yield number, RowError(f"not valid JSON ({e.msg} at column {e.colno})", "invalid_json")


# ---------------------------------------------------------------- field checks


def _text(value: Any, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RowError(f"{what} must be a string, got {type(value).__name__}", "wrong_type")
    if not allow_empty and not value.strip():
        raise RowError(f"{what} is empty", "empty_field")
    return value


def _content(value: Any, what: str) -> str:
    """A message's content: a string, or a list of text parts ({"type": "text", "text"|"value": ...})."""
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type", "text") != "text":
                raise RowError(f"{what}[{i}] is not a text part (only text content is supported)", "non_text_content")
            parts.append(_text(part.get("text", part.get("value")), f"{what}[{i}].text", allow_empty=True))
        value = "".join(parts)
    return _text(value, what)


def _messages(value: Any, what: str, role_key: str = "role", content_key: str = "content",
              roles: dict[str, str] | None = None) -> list[dict]:  # fmt: skip
    if not isinstance(value, list) or not value:
        raise RowError(f"{what} must be a non-empty list of messages", "wrong_type")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise RowError(f"{what}[{i}] must be an object", "wrong_type")
        raw_role = message.get(role_key)
        role = (roles or {r: r for r in MESSAGE_ROLES}).get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            allowed = ", ".join(sorted(roles or MESSAGE_ROLES))
            raise RowError(f"{what}[{i}].{role_key} is {raw_role!r}; expected one of {allowed}", "unknown_role")
        if role == "system" and i != 0:
            raise RowError(f"{what}[{i}]: a system message may only come first", "misplaced_system")
        out.append({"role": role, "content": _content(message.get(content_key), f"{what}[{i}].{content_key}")})
    return out


def _check_conversation(messages: list[dict], what: str) -> list[dict]:
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError(f"{what} has no assistant message to learn from", "no_assistant_turn")
    return messages


# ---------------------------------------------------------------- SFT shapes


def _alpaca(row: dict) -> dict:
    instruction = _text(row.get("instruction"), "instruction")
    extra = _text(row.get("input", ""), "input", allow_empty=True)
    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": _text(row["system"], "system")})
    for i, turn in enumerate(row.get("history") or []):
        if not (isinstance(turn, list) and len(turn) == 2):
            raise RowError(f"history[{i}] must be a [question, answer] pair", "wrong_type")
        messages.append({"role": "user", "content": _text(turn[0], f"history[{i}][0]")})
        messages.append({"role": "assistant", "content": _text(turn[1], f"history[{i}][1]")})
    prompt = instruction + ("\n\n" + extra if extra.strip() else "")
    messages.append({"role": "user", "content": prompt})
    messages.append({"role": "assistant", "content": _text(row.get("output"), "output")})
    return {"messages": messages}


def _sharegpt(row: dict) -> dict:
    messages = _messages(row.get("conversations"), "conversations", "from", "value", SHAREGPT_ROLES)
    if row.get("system"):
        messages.insert(0, {"role": "system", "content": _text(row["system"], "system")})
    return {"messages": _check_conversation(messages, "conversations")}


def _messages_row(row: dict) -> dict:
    return {"messages": _check_conversation(_messages(row.get("messages"), "messages"), "messages")}


def _prompt_completion(row: dict) -> dict:
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) or isinstance(completion, list):
        messages = _messages(prompt, "prompt") + _messages(completion, "completion")
        return {"messages": _check_conversation(messages, "prompt + completion")}
    return {"prompt": _text(prompt, "prompt", allow_empty=True), "completion": _text(completion, "completion")}


def _plain(row: dict) -> dict:
    return {"text": _text(row.get("text"), "text")}


# Order matters: the first shape whose keys a row has is its shape.
SFT_SHAPES: dict[str, tuple[tuple[str, ...], Callable[[dict], dict]]] = {
    "alpaca": (("instruction", "output"), _alpaca),
    "sharegpt": (("conversations",), _sharegpt),
    "messages": (("messages",), _messages_row),
    "prompt_completion": (("prompt", "completion"), _prompt_completion),
    "text": (("text",), _plain),
}


def detect_shape(row: Any, shapes: dict) -> str:
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}", "wrong_type")
    for name, (keys, _) in shapes.items():
        if all(k in row for k in keys):
            return name
    expected = "; ".join(f"{name} ({'/'.join(keys)})" for name, (keys, _) in shapes.items())
    raise RowError(f"unknown row shape with keys {sorted(row)[:8]}; expected one of: {expected}", "unknown_format")


# ---------------------------------------------------------------- preference shapes


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_dialogue(text: str, what: str) -> list[dict]:
    """hh-rlhf's "\\n\\nHuman: ...\\n\\nAssistant: ..." string as messages."""
    if not isinstance(text, str):
        raise RowError(f"{what} must be a string", "wrong_type")
    pieces = _HH_TURN.split(text if text.startswith("\n\n") else "\n\n" + text)
    if len(pieces) < 3 or pieces[0].strip():
        raise RowError(f"{what} is not a Human/Assistant dialogue", "not_a_dialogue")
    messages = []
    for speaker, content in zip(pieces[1::2], pieces[2::2]):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    return messages


def _split_shared_prefix(chosen: list[dict], rejected: list[dict]) -> dict:
    """Implicit prompt: the messages both sides share; each side must end in one assistant message."""
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        if side[-1]["role"] != "assistant" or not side[-1]["content"].strip():
            raise RowError(f"{name} must end with a non-empty assistant message", "no_assistant_turn")
    if chosen[:-1] != rejected[:-1] or len(chosen) < 2:
        raise RowError("chosen and rejected must share every message but the last", "prompts_differ")
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}


def _pref_explicit(row: dict) -> dict:
    prompt = row["prompt"]
    if isinstance(prompt, list):
        def side(name):
            value = row.get(name)
            msgs = _messages(value if isinstance(value, list) else [{"role": "assistant", "content": value}], name)
            if [m["role"] for m in msgs] != ["assistant"]:
                raise RowError(f"{name} must be one assistant message", "wrong_type")
            return msgs

        return {"prompt": _messages(prompt, "prompt"), "chosen": side("chosen"), "rejected": side("rejected")}
    return {"prompt": _text(prompt, "prompt"), "chosen": _text(row.get("chosen"), "chosen"),
            "rejected": _text(row.get("rejected"), "rejected")}  # fmt: skip


def _pref_sharegpt(row: dict) -> dict:
    prompt = _messages(row.get("conversations"), "conversations", "from", "value", SHAREGPT_ROLES)
    if row.get("system"):
        prompt.insert(0, {"role": "system", "content": _text(row["system"], "system")})
    if prompt[-1]["role"] != "user":
        raise RowError("conversations must end with a human turn", "wrong_type")
    sides = {}
    for name in ("chosen", "rejected"):
        turn = row.get(name)
        msgs = _messages([turn] if isinstance(turn, dict) else turn, name, "from", "value", SHAREGPT_ROLES)
        if [m["role"] for m in msgs] != ["assistant"]:
            raise RowError(f"{name} must be one gpt turn", "wrong_type")
        sides[name] = msgs
    return {"prompt": prompt, **sides}


def _pref_implicit(row: dict) -> dict:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, str) and isinstance(rejected, str):  # hh-rlhf dialogue strings
        return _split_shared_prefix(parse_hh_dialogue(chosen, "chosen"), parse_hh_dialogue(rejected, "rejected"))
    return _split_shared_prefix(_messages(chosen, "chosen"), _messages(rejected, "rejected"))


def _pref_v1(row: dict) -> dict:
    return _split_shared_prefix(_messages(row.get("chosen_messages"), "chosen_messages"),
                                _messages(row.get("rejected_messages"), "rejected_messages"))  # fmt: skip


PREFERENCE_SHAPES: dict[str, tuple[tuple[str, ...], Callable[[dict], dict]]] = {
    "prompt_chosen_rejected": (("prompt", "chosen", "rejected"), _pref_explicit),
    "sharegpt_preference": (("conversations", "chosen", "rejected"), _pref_sharegpt),
    "chosen_rejected": (("chosen", "rejected"), _pref_implicit),
    "chosen_rejected_messages": (("chosen_messages", "rejected_messages"), _pref_v1),
}


# ---------------------------------------------------------------- loading files


def load_examples(paths: list[str | Path], shapes: dict, skip_invalid: bool = False,
                  report: LoadReport | None = None) -> list[dict]:  # fmt: skip
    """Every valid row of every file, in normal form; a bad row raises TrainError(FILE:LINE: ...)."""
    report = report if report is not None else LoadReport()
    examples: list[dict] = []
    for path in paths:
        file_shape: str | None = None
        for line, row in iter_rows(path):
            try:
                if isinstance(row, RowError):
                    raise row
                if shapes is SFT_SHAPES and isinstance(row, dict) and {"chosen", "rejected"} <= row.keys():
                    raise RowError("a preference row (chosen/rejected) is data for `train dpo`, not `train sft`", "preference_row")
                shape = detect_shape(row, shapes)
                if file_shape is None:
                    file_shape = shape
                elif shape != file_shape:
                    raise RowError(f"row is {shape} but this file's first row is {file_shape}", "mixed_formats")
                examples.append(shapes[shape][1](row))
                report.formats[shape] += 1
            except RowError as e:
                where = f"{path}:{line}: {e}"
                if not skip_invalid:
                    raise TrainError(where + " (pass --skip-invalid to skip bad rows)") from None
                report.skipped[e.reason] += 1
                if len(report.first_skipped) < 5:
                    report.first_skipped.append(where)
    if not examples:
        raise TrainError(f"{', '.join(map(str, paths))}: no valid rows")
    return examples


def load_sft(paths, skip_invalid: bool = False, report: LoadReport | None = None) -> list[dict]:
    return load_examples(paths, SFT_SHAPES, skip_invalid, report)


def load_preferences(paths, skip_invalid: bool = False, report: LoadReport | None = None) -> list[dict]:
    return load_examples(paths, PREFERENCE_SHAPES, skip_invalid, report)


# ---------------------------------------------------------------- the train/test split


def example_hash(example: dict) -> str:
    """Content hash of a normal-form example: the same example lands in the same split on every run."""
    return hashlib.blake2b(json.dumps(example, sort_keys=True, ensure_ascii=False).encode(), digest_size=8).hexdigest()


def split_by_hash(examples: list[dict], test_fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    if test_fraction <= 0:
        return list(examples), []
    hashes = np.array([int(example_hash(e), 16) for e in examples], dtype=np.uint64)
    from corpus.shard_format import mix_seed, unit_interval

    in_test = unit_interval(mix_seed(hashes, seed)) < test_fraction
    train = [e for e, t in zip(examples, in_test) if not t]
    test = [e for e, t in zip(examples, in_test) if t]
    if not train:
        raise TrainError(f"--test-split {test_fraction}: every one of the {len(examples)} examples fell in the test set")
    return train, test


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
