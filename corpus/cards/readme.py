"""The human card: README.md with Hugging Face dataset-card front matter, rendered from card.json."""

from __future__ import annotations

import yaml

from corpus.cards import LIMITATIONS_HEADING, LIMITATIONS_PLACEHOLDER

# stage_facts keys that have their own section; everything else goes under "Stage details"
_OWN_SECTIONS = {"dedup", "mix_shares", "skipped_files", "warnings", "readme_sections", "classify"}


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1B"


def front_matter(card: dict) -> dict:
    stats = card["stats"]
    languages = sorted(k for k in stats.get("by_lang", {}) if k and k != "unknown")
    sources = sorted({i.get("name") or i.get("path") for i in card["inputs"] if i.get("kind") == "dataset"})
    raw = sorted({i.get("source") for i in card["inputs"] if i.get("kind") == "files" and i.get("source")})
    return {
        "pretty_name": card["name"],
        "license": card.get("config", {}).get("license", "other"),
        "language": languages or ["unknown"],
        "size_categories": [size_category(stats["docs"])],
        "source_datasets": sources or raw or ["original"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    }


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_value(value, limit: int = 10) -> str:
    """A stage fact as Markdown: a table for dicts and lists of dicts, a line otherwise."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        cols = list(dict.fromkeys(k for v in value.values() for k in v))
        return table(["", *cols], [[k, *[v.get(c, "") for c in cols]] for k, v in value.items()])
    if isinstance(value, dict) and value:
        return table(["key", "value"], [[k, v] for k, v in value.items()])
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(k for v in value for k in v))
        body = table(cols, [[v.get(c, "") for c in cols] for v in value[:limit]])
        return body + (f"\n\n({len(value) - limit:,} more in card.json)" if len(value) > limit else "")
    if isinstance(value, list):
        shown = "\n".join(f"- {_cell(v)}" for v in value[:limit])
        return shown + (f"\n- ... ({len(value) - limit:,} more in card.json)" if len(value) > limit else "")
    return _cell(value)


def _kept_limitations(previous: str) -> str:
    if LIMITATIONS_HEADING not in previous:
        return LIMITATIONS_PLACEHOLDER
    after = previous.split(LIMITATIONS_HEADING, 1)[1]
    section = after.split("\n## ", 1)[0].strip("\n")
    return section or LIMITATIONS_PLACEHOLDER


def _plot(card: dict, name: str) -> str | None:
    path = f"plots/{name}"
    return f"![{name}]({path})\n" if path in card.get("plots", []) else None


def render_readme(card: dict, previous: str = "", evidence: list[dict] | None = None) -> str:
    stats = card["stats"]
    acc = card["accounting"][-1]
    facts = card.get("stage_facts") or {}
    measure = "tokens" if "tokens" in stats else "words"
    parts = ["---\n" + yaml.safe_dump(front_matter(card), sort_keys=False, allow_unicode=True) + "---\n", f"# {card['name']}\n"]
    parts.append(
        f"{stats['docs']:,} documents, {stats['chars']:,} characters, {stats.get(measure, 0):,} {measure}, made by the "
        f"`{card['stage']}` stage on {card['created']}. This stage read {acc['docs_in']:,} documents, kept "
        f"{acc['kept']:,} and rejected {sum(acc['rejected'].values()):,}.\n"
    )

    parts.append("## Sources and lineage\n")
    rows = []
    for item in card["inputs"]:
        if item.get("kind") == "dataset":
            rows.append([f"dataset `{item.get('name')}` ({item.get('stage')})", f"`{item['path']}`",
                         f"card `{(item.get('card_sha256') or '')[:12]}`"])  # fmt: skip
        else:
            rows.append([f"{item.get('files', 0):,} {item.get('format', 'files')} files ({item.get('source')}, "
                         f"{item.get('domain')})", f"`{item['path']}`", f"{item.get('bytes', 0):,} bytes"])  # fmt: skip
    parts.append(table(["input", "path (from this folder)", "identity"], rows) + "\n")
    commit = card["tool"].get("git_commit") or "unknown"
    parts.append(
        f"Made with `{' '.join(card['command'])}` by corpus {card['tool']['version']} (commit `{commit[:12]}`)"
        + (f" from pipeline `{card['pipeline_file']}`" if card.get("pipeline_file") else "")
        + f" on {card['created']}; executor `{card['executor'].get('type')}` with {card['executor'].get('tasks')} tasks.\n"
    )
    parts.append("Stage configuration:\n\n```yaml\n" + yaml.safe_dump(card["config"], sort_keys=False, allow_unicode=True) + "```\n")

    parts.append("## Accounting per stage\n")
    parts.append(table(
        ["stage", "in", "kept", "rejected", "by reason"],
        [[a["stage"], a["docs_in"], a["kept"], sum(a["rejected"].values()),
          ", ".join(f"{k}: {v:,}" for k, v in a["rejected"].items()) or "-"] for a in card["accounting"]],
    ) + "\n")  # fmt: skip
    if acc.get("skipped_records"):
        skipped = ", ".join(f"{k}: {v:,}" for k, v in acc["skipped_records"].items())
        parts.append(f"Records that are not documents, counted apart: {skipped}.\n")
    if facts.get("skipped_files"):
        parts.append(f"Files in input folders not read, with the reason ({len(facts['skipped_files']):,}):\n")
        parts.append(render_value(facts["skipped_files"], limit=5) + "\n")
    if card.get("plots") and _plot(card, "rejected_by_reason.svg"):
        parts.append(_plot(card, "rejected_by_reason.svg"))

    parts.append("## Distributions\n")
    for key, title in (("by_domain", "domain"), ("by_source", "source"), ("by_lang", "language")):
        groups = stats.get(key, {})
        if groups:
            parts.append(table([title, "documents", measure, "characters", "share of characters"],
                               [[k, v["docs"], v.get(measure, 0), v["chars"], f"{100 * v['share_chars']:.1f}%"]
                                for k, v in groups.items()]) + "\n")  # fmt: skip
    for name in ("share_domain.svg", "share_source.svg"):
        if _plot(card, name):
            parts.append(_plot(card, name))
    if stats.get("length_chars"):
        q = stats["length_chars"]
        parts.append("Document length in characters: " + ", ".join(f"{k} {v:,}" for k, v in q.items()) + ".\n")
    if _plot(card, "length_histogram.svg"):
        parts.append(_plot(card, "length_histogram.svg"))

    if card.get("scores"):
        parts.append("## Quality and other scores\n")
        parts.append(render_value(card["scores"]) + "\n")
    if facts.get("dedup"):
        parts.append("## Deduplication\n")
        parts.append(render_value(facts["dedup"]) + "\n")
    if facts.get("mix_shares"):
        parts.append("## Mix: target vs achieved\n")
        parts.append(render_value(facts["mix_shares"]) + "\n")
        if _plot(card, "mix_shares.svg"):
            parts.append(_plot(card, "mix_shares.svg"))
    details = {k: v for k, v in facts.items() if k not in _OWN_SECTIONS}
    if details or facts.get("warnings"):
        parts.append("## Stage details\n")
        for key, value in details.items():
            parts.append(f"**{key}**\n\n{render_value(value)}\n")
        if facts.get("warnings"):
            parts.append(f"**warnings while reading**\n\n{render_value(facts['warnings'])}\n")

    if card.get("examples"):
        parts.append("## Example openings\n")
        for domain, items in card["examples"].items():
            for item in items:
                parts.append(f"- **{domain}** `{item['id'][:12]}`: {item['opening']}")
        parts.append("")
    for section in card.get("stage_facts", {}).get("readme_sections", []):  # a stage's own Markdown sections
        parts.append(section + "\n")
    if evidence:
        from corpus.cards.evidence import render_evidence

        parts.append(render_evidence(evidence))
    parts.append(LIMITATIONS_HEADING + "\n")
    parts.append(_kept_limitations(previous) + "\n")
    return "\n".join(parts)
