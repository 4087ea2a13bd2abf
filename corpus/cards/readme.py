"""The human card: README.md with Hugging Face dataset-card front matter, rendered from card.json."""

from __future__ import annotations

import yaml

from corpus.cards import LIMITATIONS_HEADING, LIMITATIONS_PLACEHOLDER


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1B"


def _front_matter(card: dict) -> str:
    stats = card["stats"]
    languages = sorted(k for k in stats.get("by_lang", {}) if k and k != "unknown")
    sources = sorted({i.get("name") or i.get("path") for i in card["inputs"] if i.get("kind") == "dataset"})
    meta = {
        "pretty_name": card["name"],
        "license": card.get("config", {}).get("license", "other"),
        "language": languages or ["unknown"],
        "size_categories": [size_category(stats["docs"])],
        "source_datasets": sources or ["original"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _kept_limitations(previous: str) -> str:
    if LIMITATIONS_HEADING not in previous:
        return LIMITATIONS_PLACEHOLDER
    after = previous.split(LIMITATIONS_HEADING, 1)[1]
    section = after.split("\n## ", 1)[0].strip("\n")
    return section or LIMITATIONS_PLACEHOLDER


def render_readme(card: dict, previous: str = "") -> str:
    stats = card["stats"]
    acc = card["accounting"][-1]
    parts = [_front_matter(card), f"# {card['name']}\n"]
    parts.append(
        f"{stats['docs']:,} documents ({stats['chars']:,} characters) made by the `{card['stage']}` stage "
        f"of corpus {card['tool']['version']} on {card['created']}. "
        f"This stage read {acc['docs_in']:,} documents, kept {acc['kept']:,} and rejected "
        f"{sum(acc['rejected'].values()):,}.\n"
    )
    parts.append("## Sources and lineage\n")
    rows = []
    for item in card["inputs"]:
        if item.get("kind") == "dataset":
            rows.append([f"dataset `{item.get('name')}`", item["path"], f"`{(item.get('card_sha256') or '')[:12]}`"])
        else:
            rows.append([f"{item.get('format', 'files')} ({item.get('source')}, {item.get('domain')})", item["path"], f"{item.get('files', '')} files"])
    parts.append(_table(["input", "path", "card hash / files"], rows) + "\n")
    commit = card["tool"].get("git_commit") or "unknown"
    parts.append(
        f"Made with `{' '.join(card['command'])}` (corpus {card['tool']['version']}, commit `{commit[:12]}`)"
        + (f" from pipeline `{card['pipeline_file']}`" if card.get("pipeline_file") else "")
        + ".\n"
    )
    parts.append("## Accounting per stage\n")
    parts.append(
        _table(
            ["stage", "in", "kept", "rejected", "by reason"],
            [
                [a["stage"], f"{a['docs_in']:,}", f"{a['kept']:,}", f"{sum(a['rejected'].values()):,}",
                 ", ".join(f"{k}: {v:,}" for k, v in a["rejected"].items()) or "-"]  # fmt: skip
                for a in card["accounting"]
            ],
        )
        + "\n"
    )
    if acc.get("skipped_records"):
        skipped = ", ".join(f"{k}: {v:,}" for k, v in acc["skipped_records"].items())
        parts.append(f"Records that are not documents and were not counted: {skipped}.\n")
    skipped_files = card.get("stage_facts", {}).get("skipped_files")
    if skipped_files:
        parts.append(f"{len(skipped_files)} files in input folders hold no documents and were not read "
                     f"(listed in card.json under stage_facts.skipped_files).\n")  # fmt: skip
    parts.append("## Distributions\n")
    for key, title in (("by_domain", "domain"), ("by_source", "source"), ("by_lang", "language")):
        rows = [[k, f"{v['docs']:,}", f"{v['chars']:,}"] for k, v in stats.get(key, {}).items()]
        if rows:
            parts.append(_table([title, "documents", "characters"], rows) + "\n")
    if stats.get("length_chars"):
        q = stats["length_chars"]
        parts.append("Document length in characters: " + ", ".join(f"{k} {v:,}" for k, v in q.items() if v is not None) + ".\n")
    if card.get("examples"):
        parts.append("## Example openings\n")
        for domain, items in card["examples"].items():
            for item in items:
                parts.append(f"- **{domain}** `{item['id'][:12]}`: {item['opening']}")
        parts.append("")
    for section in card.get("stage_facts", {}).get("readme_sections", []):  # a stage's own Markdown sections
        parts.append(section + "\n")
    parts.append(LIMITATIONS_HEADING + "\n")
    parts.append(_kept_limitations(previous) + "\n")
    return "\n".join(parts)
