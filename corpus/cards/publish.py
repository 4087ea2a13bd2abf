"""Copy the cards (not the data) of a tree of dataset folders, e.g. into data_cards/.

    python -m corpus.cards.publish out/quickstart data_cards/quickstart
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from corpus.cards.evidence import EVIDENCE_JSON
from corpus.document import CARD_JSON, CARD_README


def publish(source: Path, target: Path) -> list[Path]:
    written = []
    for card in sorted(source.rglob(CARD_JSON)):
        folder = card.parent
        dest = target / folder.relative_to(source)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in (CARD_JSON, CARD_README, EVIDENCE_JSON):
            if (folder / name).is_file():
                shutil.copy2(folder / name, dest / name)
        if (folder / "plots").is_dir():
            shutil.copytree(folder / "plots", dest / "plots")
        written.append(dest)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m corpus.cards.publish SOURCE_TREE TARGET")
    for dest in publish(Path(sys.argv[1]), Path(sys.argv[2])):
        print(dest)
