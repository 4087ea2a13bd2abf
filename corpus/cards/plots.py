"""PNG plots of a card (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

PLOTS_DIR = "plots"


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    return plt, fig, ax


def _save(plt, fig, folder: Path, name: str) -> str:
    out = folder / PLOTS_DIR
    out.mkdir(exist_ok=True)
    fig.tight_layout()
    # a fixed creation date keeps the PNG bytes the same for the same data
    fig.savefig(out / name, metadata={"Software": None, "Creation Time": None} if name.endswith(".png") else None)
    plt.close(fig)
    return f"{PLOTS_DIR}/{name}"


def _barh(folder: Path, name: str, title: str, labels: list[str], values: list[float], xlabel: str) -> str:
    plt, fig, ax = _figure()
    ax.barh(labels[::-1], values[::-1], color="#4C72B0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _save(plt, fig, folder, name)


def write_plots(folder: Path, card: dict) -> list[str]:
    """Length histogram, shares by domain and source, rejections by reason. Returns relative paths."""
    stats = card["stats"]
    written = []
    hist = stats.get("length_histogram") or []
    if stats.get("docs"):
        plt, fig, ax = _figure()
        ax.bar([h["chars"] for h in hist], [h["docs"] for h in hist], color="#4C72B0")
        ax.set_title("Document length (characters)")
        ax.set_ylabel("documents")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        written.append(_save(plt, fig, folder, "length_histogram.png"))
        for key, title in (("by_domain", "domain"), ("by_source", "source")):
            groups = stats.get(key) or {}
            if groups:
                labels = list(groups)
                written.append(_barh(folder, f"share_{title}.png", f"Share of characters by {title}", labels,
                                     [100 * groups[k]["share_chars"] for k in labels], "% of characters"))  # fmt: skip
    reasons = (card.get("rejected_stats") or {}).get("by_reason") or {}
    if reasons:
        labels = list(reasons)
        written.append(_barh(folder, "rejected_by_reason.png", "Rejected documents by reason", labels,
                             [reasons[k] for k in labels], "documents"))  # fmt: skip
    mix = (card.get("stage_facts") or {}).get("mix_shares")
    if isinstance(mix, dict) and mix:
        plt, fig, ax = _figure()
        labels = list(mix)
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], [100 * mix[k].get("target", 0) for k in labels], width=0.4, label="target")
        ax.bar([i + 0.2 for i in x], [100 * mix[k].get("achieved", 0) for k in labels], width=0.4, label="achieved")
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("% of tokens")
        ax.set_title("Mix: target vs achieved share")
        ax.legend()
        written.append(_save(plt, fig, folder, "mix_shares.png"))
    return written
