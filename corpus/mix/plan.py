"""The mixing plan: how many copies of each document go into the mix. Pure numpy, no texts.

Units are tokens (a token budget) or documents (a document budget): `sizes[i]` is document i's
tokens, or 1. The plan has three steps:

1. `target_shares`: each group's share of the budget, from weights or by temperature sampling
   (p_i proportional to n_i^(1/T), n_i the group's natural size).
2. `allocate`: units per group, never more than the group can give with `max_epochs` repeats of
   each source. A group that cannot fill its share gives everything it can; its shortfall goes
   to the other groups in proportion to their shares (water-filling), so the total budget holds.
3. `plan_copies` (`choose_copies`): per group, whole epochs while the allocation needs them, then a partial epoch:
   a seeded random order (a hash of the document id and the seed), a cumulative-sum cutoff at the
   allocation, and a few fill passes that add later documents small enough for the gap left. When
   a group of long documents still falls short enough to move the shares, all allocations shrink
   to its scale and the choice is made again (the shares matter more than the last tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corpus.errors import CorpusError
from corpus.shard_format import mix_seed

FILL_PASSES = 8


def parse_weights(text: str) -> dict[str, float]:
    """`insurance=0.3,general=0.7` -> {"insurance": 0.3, "general": 0.7}; a clear error otherwise."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            share = float(value)
        except ValueError:
            raise CorpusError(f"--weights: {part.strip()!r} is not NAME=WEIGHT (e.g. insurance=0.3,general=0.7)") from None
        if name in weights:
            raise CorpusError(f"--weights: {name!r} is named twice")
        weights[name] = share
    check_weights(weights, "--weights")
    return weights


def check_weights(weights: dict[str, float], where: str) -> None:
    bad = [k for k, v in weights.items() if not math.isfinite(v) or v < 0]
    if bad:
        raise CorpusError(f"{where}: weights must be finite and not negative: {', '.join(bad)}")
    if sum(weights.values()) <= 0:
        raise CorpusError(f"{where}: weights sum to zero; give at least one group a positive weight")


def check_weight_names(weights: dict[str, float] | None, names: list[str], by: str) -> None:
    unknown = [k for k in (weights or {}) if k not in names]
    if unknown:
        raise CorpusError(f"--weights names {by} {', '.join(map(repr, unknown))} that no input has "
                          f"(inputs have: {', '.join(names) or 'none'})")  # fmt: skip


def target_shares(names: list[str], natural: np.ndarray, weights: dict[str, float] | None,
                  temperature: float | None, by: str) -> np.ndarray:  # fmt: skip
    """Each group's target share of the budget (sums to 1)."""
    if weights is not None:
        check_weight_names(weights, names, by)
        raw = np.array([weights.get(n, 0.0) for n in names], np.float64)
    else:
        t = 1.0 if temperature is None else temperature
        raw = np.power(natural.astype(np.float64), 1.0 / t)
    if raw.sum() <= 0:
        raise CorpusError("the inputs hold no tokens or documents to mix")
    return raw / raw.sum()


def group_capacity(sizes: np.ndarray, group: np.ndarray, source: np.ndarray, n_groups: int, max_epochs: float) -> np.ndarray:
    """Most units each group can give: floor(E) whole epochs plus frac(E) of each of its sources."""
    full = math.floor(max_epochs)
    frac = max_epochs - full
    natural = np.bincount(group, weights=sizes, minlength=n_groups)
    capacity = full * natural
    if frac > 0:
        per_pair = np.zeros((n_groups, int(source.max(initial=-1)) + 1))
        np.add.at(per_pair, (group, source), sizes)
        capacity = capacity + np.floor(frac * per_pair).sum(axis=1)
    return capacity


@dataclass
class Allocation:
    units: np.ndarray  # per group, whole units (tokens or documents) to take
    planned_shares: np.ndarray  # units / budget: the targets after renormalisation
    short_groups: list[str]  # groups that could not fill their share
    warnings: list[str]


def allocate(budget: int, shares: np.ndarray, capacity: np.ndarray, names: list[str], by: str,
             strict: bool, max_epochs: float, whole_units: bool) -> Allocation:  # fmt: skip
    """Units per group; raises when the budget exceeds what the weighted groups can give."""
    unit = "documents" if whole_units else "tokens"
    positive = shares > 0
    most = float(capacity[positive].sum())
    if budget > most:
        raise CorpusError(f"the budget of {budget:,} {unit} is more than the inputs "
                          f"can give with --max-epochs {max_epochs:g} ({int(most):,}); lower the budget or raise --max-epochs")  # fmt: skip
    alloc = np.zeros(len(shares))
    fixed = np.zeros(len(shares), bool)
    while True:
        free = positive & ~fixed
        left = budget - alloc[fixed].sum()
        alloc[free] = shares[free] / shares[free].sum() * left
        over = free & (alloc > capacity + 1e-9)
        if not over.any():
            break
        alloc[over] = capacity[over]
        fixed |= over
    short = [names[i] for i in np.flatnonzero(fixed)]
    warnings = []
    for i in np.flatnonzero(fixed):
        want = shares[i] * budget
        message = (f"{by} {names[i]!r} cannot fill its share: target {100 * shares[i]:.2f}% ({want:,.0f} {unit}) but "
                   f"{int(capacity[i]):,} at most with --max-epochs {max_epochs:g}")  # fmt: skip
        if strict:
            raise CorpusError(message + " (--strict)")
        warnings.append(message + "; the other groups were scaled up in proportion to their shares")
    units = np.floor(alloc).astype(np.int64)
    if whole_units:  # largest remainder, so the document budget is met exactly
        missing = int(budget - units.sum())
        room = (capacity - units) >= 1
        order = np.argsort(-(alloc - units) + np.where(room & positive, 0, 2), kind="stable")  # no room: last
        units[order[:missing]] += 1
    return Allocation(units, units / budget, short, warnings)


def take_up_to(sizes: np.ndarray, eligible: np.ndarray, room: float) -> np.ndarray:
    """Documents (in the given order) taken by a cumulative-sum cutoff at `room`, then fill passes."""
    chosen = np.zeros(len(sizes), bool)
    candidates = eligible.copy()
    for _ in range(FILL_PASSES):
        fits = candidates & (sizes <= room)
        if not fits.any():
            break
        cumulative = np.cumsum(np.where(fits, sizes, 0))
        new = fits & (cumulative <= room)
        chosen |= new
        candidates &= ~new
        room -= float(sizes[new].sum())
        if room <= 0:
            break
    return chosen


def within_source_cap(sizes: np.ndarray, source: np.ndarray, frac: float) -> np.ndarray:
    """Documents (in the given order) whose source's running total stays within frac of the source."""
    by_source = np.argsort(source, kind="stable")  # keeps the given order inside each source
    grouped_sizes = sizes[by_source].astype(np.float64)
    grouped_source = source[by_source]
    running = np.cumsum(grouped_sizes)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(grouped_source)) + 1])
    lengths = np.diff(np.concatenate([starts, [len(sizes)]]))
    before = np.repeat(running[starts] - grouped_sizes[starts], lengths)
    totals = np.repeat(np.add.reduceat(grouped_sizes, starts), lengths)
    eligible = np.empty(len(sizes), bool)
    eligible[by_source] = (running - before) <= frac * totals
    return eligible


def epoch_order(hashes: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """A seeded random order, different in each epoch, that depends only on the documents' ids."""
    keys = mix_seed(mix_seed(hashes, seed), epoch)
    return np.argsort(keys, kind="stable")


def choose_copies(sizes: np.ndarray, group: np.ndarray, source: np.ndarray, hashes: np.ndarray,
                  units: np.ndarray, max_epochs: float, seed: int) -> np.ndarray:  # fmt: skip
    """Copies of each document (0: not sampled), meeting each group's units from below."""
    copies = np.zeros(len(sizes), np.uint16)
    full = math.floor(max_epochs)
    frac = max_epochs - full
    for g, want in enumerate(units):
        members = np.flatnonzero(group == g)
        natural = float(sizes[members].sum())
        if want <= 0 or natural <= 0:
            continue
        whole = min(int(want // natural), full)
        copies[members] = whole
        room = want - whole * natural
        if room <= 0 or whole >= math.ceil(max_epochs):
            continue
        order = members[epoch_order(hashes[members], seed, whole)]
        eligible = np.ones(len(order), bool)
        if whole == full and frac > 0:  # the fractional epoch: each source gives at most frac of itself
            eligible = within_source_cap(sizes[order], source[order], frac)
        chosen = take_up_to(sizes[order].astype(np.float64), eligible, room)
        copies[order[chosen]] += 1
    return copies


def share_error(sizes: np.ndarray, group: np.ndarray, copies: np.ndarray, planned: np.ndarray) -> tuple[float, np.ndarray]:
    taken = np.bincount(group, weights=sizes * copies, minlength=len(planned))
    return float(np.abs(taken / max(taken.sum(), 1) - planned).max()), taken


def plan_copies(sizes: np.ndarray, group: np.ndarray, source: np.ndarray, hashes: np.ndarray, allocation: Allocation,
                max_epochs: float, seed: int, whole_units: bool, tolerance: float = 0.001) -> np.ndarray:  # fmt: skip
    """`choose_copies`, then the final adjustment for token budgets.

    A group of few, long documents can fall short of its allocation by most of a document, which
    moves every share. Then the group that fell furthest short sets the scale: all allocations
    shrink to what it achieved, so the shares come out right and the total stays under the budget.
    """
    copies = choose_copies(sizes, group, source, hashes, allocation.units, max_epochs, seed)
    if whole_units:
        return copies  # document counts are met exactly
    planned = allocation.planned_shares
    error, taken = share_error(sizes, group, copies, planned)
    positive = planned > 0
    for _ in range(3):
        if error <= tolerance:
            break
        scale = float((taken[positive] / allocation.units[positive].clip(min=1)).min())
        units = np.floor(allocation.units * scale).astype(np.int64)
        candidate = choose_copies(sizes, group, source, hashes, units, max_epochs, seed)
        candidate_error, candidate_taken = share_error(sizes, group, candidate, planned)
        if candidate_error >= error:
            break
        copies, error, taken = candidate, candidate_error, candidate_taken
    return copies


class MixTargets(BaseModel):
    """Budget and target shares, shared by the dataset mix and the SFT-set mix."""

    model_config = ConfigDict(extra="forbid")

    budget_tokens: int | None = Field(None, gt=0, description="tokens in the mix (needs token counts)")
    budget_docs: int | None = Field(None, gt=0, description="documents (rows) in the mix, repeats included")
    weights: dict[str, float] | None = Field(None, description="group -> weight; unset: temperature sampling")
    temperature: float | None = Field(None, gt=0, description="p_i ~ n_i^(1/T) from natural sizes; 1: natural")
    max_epochs: float = Field(4.0, ge=1, description="most copies of each source's tokens (whole-document repeats)")
    seed: int = 0
    strict: bool = Field(False, description="a group that cannot fill its share is an error, not a warning")
    tokenizer: str | None = Field(None, description="the target tokenizer folder, for exact token counts")

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights):
        if weights is not None:
            try:
                check_weights(weights, "weights")
            except CorpusError as e:
                raise ValueError(str(e).removeprefix("weights: ")) from None
        return weights

    @model_validator(mode="after")
    def _one_budget(self):
        if (self.budget_tokens is None) == (self.budget_docs is None):
            raise ValueError("give exactly one of budget_tokens and budget_docs")
        if self.weights is not None and self.temperature is not None:
            raise ValueError("give weights or temperature, not both")
        return self
