"""`corpus card show | html | diff | validate | lineage`."""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from corpus.cards import CARD_JSON, card_hash, computed_facts
from corpus.document import CARD_README, data_files, is_dataset
from corpus.errors import CorpusError


def load_card(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / CARD_JSON
    if not folder.exists():
        raise CorpusError(f"{folder}: no such folder")
    if not path.is_file():
        raise CorpusError(f"{folder}: no {CARD_JSON} (not a dataset folder)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}: not valid JSON: line {e.lineno}: {e.msg}") from None


# ---------------------------------------------------------------- show


def show(folder: str | Path, console=None) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    card = load_card(folder)
    console = console or Console()
    if not is_dataset(Path(folder)):
        _show_other(folder, card, console)
        return
    stats = card["stats"]
    measure = "tokens" if "tokens" in stats else "words"
    console.print(Panel.fit(
        f"[bold]{card['name']}[/bold]  stage [cyan]{card['stage']}[/cyan]  created {card['created']}\n"
        f"{stats['docs']:,} documents · {stats['chars']:,} characters · {stats.get(measure, 0):,} {measure}\n"
        f"corpus {card['tool']['version']} · commit {(card['tool'].get('git_commit') or 'unknown')[:12]} · "
        f"card {card['card_sha256'][:12]}",
        title=str(folder),
    ))  # fmt: skip

    t = Table(title="Accounting per stage")
    for col in ("stage", "in", "kept", "rejected", "by reason"):
        t.add_column(col, justify="right" if col in ("in", "kept", "rejected") else "left")
    for a in card["accounting"]:
        t.add_row(a["stage"], f"{a['docs_in']:,}", f"{a['kept']:,}", f"{sum(a['rejected'].values()):,}",
                  ", ".join(f"{k} {v:,}" for k, v in a["rejected"].items()) or "-")  # fmt: skip
    console.print(t)
    repeated = _repeated_copies(card)
    if repeated:
        console.print(f"data/ holds {stats['docs']:,} rows: the {card['accounting'][-1]['kept']:,} kept plus "
                      f"{repeated:,} repeated copies (epoch 1, 2, ...)")  # fmt: skip

    for key, title in (("by_domain", "domain"), ("by_source", "source"), ("by_lang", "language")):
        groups = stats.get(key) or {}
        if not groups:
            continue
        t = Table(title=f"By {title}")
        for col in (title, "documents", measure, "characters", "share"):
            t.add_column(col, justify="left" if col == title else "right")
        for k, v in groups.items():
            bar = "█" * round(20 * v["share_chars"])
            t.add_row(k, f"{v['docs']:,}", f"{v.get(measure, 0):,}", f"{v['chars']:,}", f"{100 * v['share_chars']:5.1f}% {bar}")
        console.print(t)

    hist = stats.get("length_histogram") or []
    if hist:
        top = max(h["docs"] for h in hist) or 1
        t = Table(title="Document length (characters)")
        t.add_column("chars")
        t.add_column("docs", justify="right")
        t.add_column("")
        for h in hist:
            t.add_row(h["chars"], f"{h['docs']:,}", "█" * round(30 * h["docs"] / top))
        console.print(t)

    if card.get("scores"):
        t = Table(title="Scores")
        cols = ["min", "p10", "p50", "p90", "max", "mean"]
        t.add_column("column")
        for c in cols:
            t.add_column(c, justify="right")
        for name, s in card["scores"].items():
            t.add_row(name, *[f"{s[c]:.4g}" if s.get(c) is not None else "-" for c in cols])
        console.print(t)

    from corpus.cards.evidence import evidence_rows, read_evidence

    rows = evidence_rows(read_evidence(Path(folder)))
    if rows:
        t = Table(title="Evidence (train ablate)")
        for col in ("ablation", "this arm", "against", "eval set", "loss diff", "verdict", "scale"):
            t.add_column(col)
        for row in rows:
            t.add_row(*row)
        console.print(t)
    facts = card.get("stage_facts") or {}
    if facts:
        console.print("[bold]Stage facts[/bold]: " + ", ".join(facts) + f"  (see {Path(folder) / CARD_README})")
    for domain, items in (card.get("examples") or {}).items():
        for item in items[:2]:
            console.print(f"[dim]{domain}[/dim] {item['opening'][:150]}")


def _repeated_copies(card: dict) -> int | None:
    """The extra copies of kept rows that a mix wrote to data/ (None: the card records none)."""
    mix = (card.get("stage_facts") or {}).get("mix")
    value = mix.get("repeated_copies") if isinstance(mix, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _show_other(folder, card: dict, console) -> None:
    """Tokenizer, token-shards, crawl and instruction folders: their card's headline facts."""
    from rich.panel import Panel
    from rich.table import Table

    console.print(Panel.fit(
        f"[bold]{card.get('name')}[/bold]  stage [cyan]{card.get('stage')}[/cyan]  created {card.get('created')}\n"
        f"corpus {card.get('tool', {}).get('version')} · card {str(card.get('card_sha256', ''))[:12]}",
        title=str(folder),
    ))  # fmt: skip
    acc = card.get("accounting")
    rows = acc if isinstance(acc, list) else [acc] if isinstance(acc, dict) else []
    if rows:
        t = Table(title="Accounting")
        keys = list(dict.fromkeys(k for r in rows for k in r))
        for k in keys:
            t.add_column(k)
        for r in rows:
            t.add_row(*[_short(r.get(k)) for k in keys])
        console.print(t)
    for key in ("stats", "report", "tokenizer"):
        value = card.get(key)
        if isinstance(value, dict):
            t = Table(title=key)
            t.add_column("field")
            t.add_column("value")
            for k, v in value.items():
                t.add_row(str(k), _short(v))
            console.print(t)
    console.print(f"(full card: {Path(folder) / CARD_README})")


def _short(value) -> str:
    text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else json.dumps(value, default=str, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 100 else text[:97] + "..."


# ---------------------------------------------------------------- html


# plots are SVG; cards written before that have PNG files
_IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


def to_html(folder: str | Path, output: str | Path | None = None) -> Path:
    """One self-contained HTML file: the README card with every plot embedded as a data URI."""
    import markdown

    folder = Path(folder)
    card = load_card(folder)
    readme_path = folder / CARD_README
    if not readme_path.is_file():
        raise CorpusError(f"{folder}: no {CARD_README}")
    text = readme_path.read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1] if text.startswith("---\n") else text

    def embed(match: re.Match) -> str:
        alt, src = match.group(1), match.group(2)
        path = folder / src
        if not path.is_file():
            raise CorpusError(f"{path}: plot named in {readme_path} is missing")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{alt}](data:{_IMAGE_TYPES.get(path.suffix.lower(), 'image/png')};base64,{data})"

    body = re.sub(r"!\[([^\]]*)\]\((plots/[^)]+)\)", embed, body)
    rendered = markdown.markdown(body, extensions=["tables", "fenced_code"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html_lib.escape(card['name'])} - data card</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; font-size: 0.9rem; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code, pre {{ background: #f6f6f6; }}
</style></head>
<body>
{rendered}
</body></html>
"""
    out = Path(output) if output else folder / "card.html"
    out.write_text(page, encoding="utf-8")
    return out


# ---------------------------------------------------------------- validate


def validate(folder: str | Path) -> list[str]:
    """Recompute the card's data facts; every mismatch as one line (empty list: valid)."""
    folder = Path(folder)
    card = load_card(folder)
    problems = []
    if card_hash(card) != card.get("card_sha256"):
        problems.append(f"{folder / CARD_JSON}: card_sha256 does not match the card's content (card.json was edited)")
    if not is_dataset(folder):
        return problems + _validate_other(folder, card)
    listed = {f["path"]: f for f in card.get("files", [])}
    present = {f"{kind}/{p.name}" for kind in ("data", "rejected") for p in (folder / kind).glob("*.parquet")}
    for path in sorted(set(listed) - present):
        problems.append(f"{folder / path}: listed in the card but missing")
    for path in sorted(present - set(listed)):
        problems.append(f"{folder / path}: present but not in the card")
    problems += _check_stamps(folder, card, sorted(present))
    try:
        recomputed = computed_facts(folder)
    except Exception as e:  # a corrupt Parquet file
        problems.append(f"{folder}: cannot read the data to recompute the card: {' '.join(str(e).split())[:200]}")
        return problems
    actual_files = {f["path"]: f for f in recomputed["files"]}
    for path, entry in listed.items():
        got = actual_files.get(path)
        if got is None:
            continue
        if got["sha256"] != entry["sha256"]:
            problems.append(f"{folder / path}: sha256 {got['sha256'][:12]} differs from the card's {entry['sha256'][:12]}")
        if got["rows"] != entry["rows"]:
            problems.append(f"{folder / path}: {got['rows']:,} rows, the card says {entry['rows']:,}")
    for key in ("stats", "rejected_stats", "scores"):
        if _normalised(recomputed[key]) != _normalised(card.get(key)):
            problems.append(f"{folder / CARD_JSON}: '{key}' differs from the data ({_first_difference(card.get(key), recomputed[key])})")
    acc = card["accounting"][-1]
    mix = (card.get("stage_facts") or {}).get("mix")
    if isinstance(mix, dict) and "repeated_copies" in mix:
        problems += _check_repeats(folder, acc["kept"], mix["repeated_copies"], recomputed["stats"]["docs"])
    elif acc["kept"] != recomputed["stats"]["docs"]:
        problems.append(f"{folder}: accounting says {acc['kept']:,} kept, data/ holds {recomputed['stats']['docs']:,}")
    if acc["rejected"] != recomputed["rejected_stats"]["by_reason"]:
        problems.append(f"{folder}: accounting's rejected counts differ from rejected/ ({recomputed['rejected_stats']['by_reason']})")
    if acc["docs_in"] != acc["kept"] + sum(acc["rejected"].values()):
        problems.append(f"{folder}: accounting does not add up: {acc['docs_in']} in != kept + rejected")
    return problems


def _check_stamps(folder: Path, card: dict, parts: list[str]) -> list[str]:
    """Each part file records the fingerprint of the run that wrote it and the digests of the work
    files (boilerplate list, dedup decisions) its task read: all must be the card's, so the parts of
    two runs, or of tasks that read different work files, do not validate as one dataset."""
    problems = []
    expected_work = (card.get("stage_facts") or {}).get("work_files") or {}
    for path in parts:
        try:
            meta = pq.read_metadata(folder / path).metadata or {}
        except Exception:  # reported with the data checks
            continue
        fp = meta.get(b"corpus.fingerprint")
        if fp is not None and fp.decode() != card.get("fingerprint"):
            problems.append(f"{folder / path}: written by another run (fingerprint {fp.decode()}, the card's {card.get('fingerprint')})")
        work = meta.get(b"corpus.work_files")
        if work is not None and json.loads(work) != expected_work:
            problems.append(f"{folder / path}: its task read other work files than the card records ({work.decode()[:120]})")
    return problems


def _check_repeats(folder: Path, kept: int, repeated, rows: int) -> list[str]:
    """A mix's data/ holds each kept row's first copy (epoch 0) plus `stage_facts.mix.repeated_copies`
    further copies (epoch 1, 2, ...): data/ rows == kept + repeated copies (docs/mix.md), and the
    epoch column splits the rows the same way."""
    if not isinstance(repeated, int) or isinstance(repeated, bool) or repeated < 0:
        return [f"{folder / CARD_JSON}: stage_facts.mix.repeated_copies is not a count: {json.dumps(repeated, default=str)[:60]}"]
    problems = []
    if kept + repeated != rows:
        problems.append(f"{folder}: accounting says {kept:,} kept + {repeated:,} repeated copies, data/ holds {rows:,}")
    first, again = 0, 0
    if data_files(folder):
        lf = pl.scan_parquet([str(f) for f in data_files(folder)], missing_columns="insert", extra_columns="ignore")
        epoch = pl.col("epoch")
        try:
            if "epoch" not in lf.collect_schema():
                raise ValueError("no epoch column")
            first, again = lf.select((epoch == 0).sum().alias("first"), (epoch > 0).sum().alias("again")).collect().row(0)
        except Exception as e:  # no epoch column, or not a number
            return problems + [f"{folder}: cannot count the epochs in data/: {' '.join(str(e).split())[:200]}"]
    if (first, again) != (kept, repeated):
        problems.append(f"{folder}: data/ holds {first:,} first copies (epoch 0) and {again:,} repeated copies, "
                        f"the card says {kept:,} and {repeated:,}")  # fmt: skip
    return problems


def _validate_other(folder: Path, card: dict) -> list[str]:
    """Token shards: checksums and counts against index.json; other folders: the files the card lists."""
    from corpus.document import file_sha256
    from corpus.shard_format import INDEX_JSON, verify_shards

    problems = []
    if (folder / INDEX_JSON).is_file():
        try:
            verify_shards(folder)
        except CorpusError as e:
            problems.append(str(e))
    for entry in card.get("files") or []:
        if not isinstance(entry, dict) or "sha256" not in entry or "path" not in entry:
            continue
        path = folder / entry["path"]
        if not path.is_file():
            problems.append(f"{path}: listed in the card but missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the card's {entry['sha256'][:12]}")
    return problems


def _normalised(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _first_difference(a, b, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if _normalised(a.get(k)) != _normalised(b.get(k)):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path or 'value'}: card {json.dumps(a, default=str)[:60]}, data {json.dumps(b, default=str)[:60]}"


# ---------------------------------------------------------------- diff


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _accounting_by_label(card: dict) -> dict[str, dict]:
    """The card's accounting rows by stage name; a stage that made several inputs (two ingests
    mixed together) is `ingest`, `ingest #2`, ... in the order the card lists them."""
    seen: dict[str, int] = {}
    out = {}
    for row in card.get("accounting", []):
        seen[row["stage"]] = seen.get(row["stage"], 0) + 1
        out[row["stage"] if seen[row["stage"]] == 1 else f"{row['stage']} #{seen[row['stage']]}"] = row
    return out


def diff(a: str | Path, b: str | Path) -> list[str]:
    """What changed from dataset A to dataset B: counts, shares, accounting and stage configs."""
    ca, cb = load_card(a), load_card(b)
    lines = [f"A = {a} ({ca['name']}, {ca['stage']}), B = {b} ({cb['name']}, {cb['stage']})"]

    def num(label, x, y):
        if x != y:
            delta = (y or 0) - (x or 0)
            rel = f" ({100 * delta / x:+.1f}%)" if x else ""
            lines.append(f"{label}: {x:,} -> {y:,}{rel}")

    for key in ("docs", "chars", "words", "tokens"):
        if key in ca["stats"] or key in cb["stats"]:
            num(key, ca["stats"].get(key, 0), cb["stats"].get(key, 0))
    for group in ("by_domain", "by_source", "by_lang"):
        ga, gb = ca["stats"].get(group, {}), cb["stats"].get(group, {})
        for k in sorted(set(ga) | set(gb)):
            x, y = ga.get(k, {}), gb.get(k, {})
            num(f"{group[3:]} {k} docs", x.get("docs", 0), y.get("docs", 0))
            sa, sb = x.get("share_chars", 0.0), y.get("share_chars", 0.0)
            if abs(sa - sb) >= 0.0005:
                lines.append(f"{group[3:]} {k} share of characters: {100 * sa:.1f}% -> {100 * sb:.1f}%")
    stages_a, stages_b = _accounting_by_label(ca), _accounting_by_label(cb)
    for stage in list(dict.fromkeys([*stages_a, *stages_b])):
        sa, sb = stages_a.get(stage), stages_b.get(stage)
        if sa is None or sb is None:
            lines.append(f"stage {stage}: only in {'B' if sa is None else 'A'}")
            continue
        num(f"stage {stage} in", sa["docs_in"], sb["docs_in"])
        num(f"stage {stage} kept", sa["kept"], sb["kept"])
        for reason in sorted(set(sa["rejected"]) | set(sb["rejected"])):
            num(f"stage {stage} rejected {reason}", sa["rejected"].get(reason, 0), sb["rejected"].get(reason, 0))
    ra, rb = _repeated_copies(ca), _repeated_copies(cb)
    if ra is not None or rb is not None:
        num("repeated copies in data/", ra or 0, rb or 0)
    fa, fb = _flatten(ca.get("config", {})), _flatten(cb.get("config", {}))
    for k in sorted(set(fa) | set(fb)):
        if fa.get(k) != fb.get(k):
            lines.append(f"config {k}: {json.dumps(fa.get(k), default=str)} -> {json.dumps(fb.get(k), default=str)}")
    if len(lines) == 1:
        lines.append("no differences in counts, shares, accounting or config")
    return lines


# ---------------------------------------------------------------- lineage


def lineage(folder: str | Path) -> list[str]:
    """The chain of datasets back to the raw sources, one line each, indented by depth."""
    lines: list[str] = []

    def walk(path: Path, depth: int, seen: set) -> None:
        pad = "  " * depth
        key = path.resolve()
        if key in seen:
            lines.append(f"{pad}{path} (already shown)")
            return
        seen.add(key)
        try:
            card = load_card(path)
        except CorpusError as e:
            lines.append(f"{pad}{path}: missing ({e})")
            return
        acc = card.get("accounting")
        if is_dataset(path) and isinstance(acc, list):
            acc = acc[-1]
            lines.append(f"{pad}{card['name']} [{card['stage']}] {card['stats']['docs']:,} docs "
                         f"(in {acc['docs_in']:,}, rejected {sum(acc['rejected'].values()):,}) card {card['card_sha256'][:12]} at {path}")  # fmt: skip
        else:
            lines.append(f"{pad}{card.get('name')} [{card.get('stage')}] card {str(card.get('card_sha256', ''))[:12]} at {path}")
        for item in card.get("inputs", []):
            if item.get("kind") == "dataset" or (item.get("path") and (path / item["path"] / CARD_JSON).is_file()):
                walk((path / item["path"]), depth + 1, seen)
            else:
                lines.append(f"{'  ' * (depth + 1)}raw {item.get('format')} files: {item.get('files', 0):,} files, "
                             f"{item.get('bytes', 0):,} bytes, source {item.get('source')}, domain {item.get('domain')}: "
                             f"{(path / item['path']).resolve() if ', ' not in item['path'] else item['path']}")  # fmt: skip

    walk(Path(folder), 0, set())
    return lines
