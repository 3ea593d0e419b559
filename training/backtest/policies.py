"""Selection policies: small classes behind one interface.

Each week the engine hands a policy a :class:`WeekView` (what was known at the week's start)
and a number of inspections ``k``; the policy returns which of the week's declarations to
inspect and which of those it drew at random. A policy never sees an outcome the engine has
not revealed to it: the view holds the week's declarations (contract columns, no results), the
features built from the policy's own revealed results, the model trained on them, and those
revealed results themselves (every one returned before the week began).

Adding a policy
---------------
Subclass :class:`Policy`, give it a ``kind``, implement :meth:`Policy.select`, and register it::

    from training.backtest.policies import Policy, Selection, register_policy

    class LargestValue(Policy):
        kind = "largest_value"

        def select(self, view, k, rng):
            order = np.argsort(-view.declarations["declared_value_usd"].to_numpy())
            return Selection(order[:k])

    register_policy(LargestValue)

Then ``guomen backtest --plugin mymodule --policy largest_value`` (``--plugin`` imports the
module, which registers the class) or ``run_backtest(..., policies=[LargestValue()])``.
Options after a colon are passed to the constructor as keyword arguments:
``hybrid:explore=0.2,by=novelty``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd


@dataclass
class WeekView:
    """What a policy may know when it decides a week.

    Attributes
    ----------
    week_start, week_end
        The week (UTC, half-open).
    declarations
        The week's selectable declarations (contract columns; no inspection results).
    features
        Their feature matrix under the policy's revealed results (None when the policy does
        not ask for features), columns ``feature_names``.
    probability
        The calibrated probability of the policy's current model (None without a model).
    legacy
        The legacy points of each declaration (``policy.legacy``).
    revealed
        The inspection results this policy has learnt, every one returned before
        ``week_start`` (pre-backtest history included).
    """

    week_start: pd.Timestamp
    week_end: pd.Timestamp
    declarations: pd.DataFrame
    features: np.ndarray | None
    feature_names: list[str]
    probability: np.ndarray | None
    legacy: np.ndarray
    revealed: pd.DataFrame

    def __len__(self) -> int:
        return len(self.declarations)

    def feature(self, name: str) -> np.ndarray:
        """One feature column of the week's declarations."""
        if self.features is None:
            raise ValueError("this policy did not ask for features (needs_features = False)")
        return self.features[:, self.feature_names.index(name)]


class Selection:
    """Positions (into the week's declarations) to inspect, and which were drawn at random
    (``random`` is None: none was)."""

    def __init__(self, rows: Any, random: Any = None) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.random = (
            np.zeros(len(self.rows), dtype=bool) if random is None else np.asarray(random, bool)
        )


def top_k(score: np.ndarray, k: int, rng: np.random.Generator, among: np.ndarray | None = None
          ) -> np.ndarray:  # fmt: skip
    """Positions of the ``k`` highest scores (of ``among``, default all), ties in random order."""
    pos = np.arange(len(score)) if among is None else np.asarray(among, dtype=np.int64)
    if k <= 0 or len(pos) == 0:
        return pos[:0]
    tie = rng.random(len(pos))
    order = np.lexsort((tie, -np.nan_to_num(score[pos], nan=-np.inf)))
    return pos[order[:k]]


class Policy:
    """A selection policy. Subclasses set ``kind`` and implement :meth:`select`.

    ``needs_model``: the engine trains (and retrains) a model on the policy's revealed results
    and hands its probabilities in the view. ``needs_features``: the view carries the feature
    matrix under those results.
    """

    kind: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(f"policy {self.kind!r} takes no options, got {sorted(options)}")

    @property
    def name(self) -> str:
        """Label in the report (kind plus options)."""
        return self.kind

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        """Choose at most ``k`` of the week's declarations."""
        raise NotImplementedError


class RandomPolicy(Policy):
    """Every declaration equally likely (the unbiased monitoring sample as a whole policy)."""

    kind = "random"

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        rows = rng.choice(len(view), size=min(k, len(view)), replace=False)
        return Selection(np.sort(rows), np.ones(len(rows), dtype=bool))


class LegacyPolicy(Policy):
    """The legacy points table (``policy.legacy``), highest points first."""

    kind = "legacy"

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        return Selection(top_k(view.legacy, k, rng))


class ExploitPolicy(Policy):
    """Top ``k`` by the model's calibrated probability."""

    kind = "exploit"
    needs_model = True

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        assert view.probability is not None
        return Selection(top_k(view.probability, k, rng))


def _share(value: Any, name: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return share


class HybridPolicy(Policy):
    """Exploit most of the budget, explore a share of it.

    Options: ``explore`` (share of the budget, default 0.1) and ``by``:

    - ``random``: the exploration share is a uniform random draw (the monitoring share);
    - ``uncertainty``: the declarations whose probability is least certain: the binomial
      standard deviation ``sqrt(p (1 - p) / (n + 1))``, ``n`` the enterprise's revealed results;
    - ``novelty``: declarations of a new enterprise or a new HS4 x origin pair (no revealed
      result of it yet), highest probability first; random when there are too few.
    """

    kind = "hybrid"
    needs_model = True
    needs_features = True
    MODES = ("random", "uncertainty", "novelty")

    def __init__(self, explore: float = 0.1, by: str = "random") -> None:
        self.explore = _share(explore, "explore")
        if by not in self.MODES:
            raise ValueError(f"hybrid: by must be one of {self.MODES}, got {by!r}")
        self.by = by

    @property
    def name(self) -> str:
        return f"hybrid-{self.by}-{self.explore:g}"

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        assert view.probability is not None
        p = view.probability
        k = min(k, len(view))
        k_explore = int(round(self.explore * k))
        exploit = top_k(p, k - k_explore, rng)
        rest = np.setdiff1d(np.arange(len(view)), exploit)
        if self.by == "random":
            explored = rng.choice(rest, size=min(k_explore, len(rest)), replace=False)
            random = np.r_[np.zeros(len(exploit), bool), np.ones(len(explored), bool)]
            return Selection(np.r_[exploit, explored], random)
        if self.by == "uncertainty":
            n = np.nan_to_num(view.feature("ent_insp_cnt_all"), nan=0.0)
            explored = top_k(np.sqrt(p * (1 - p) / (n + 1.0)), k_explore, rng, rest)
            return Selection(np.r_[exploit, explored])
        new_ent = np.nan_to_num(view.feature("ent_insp_cnt_all"), nan=0.0) == 0
        new_pair = np.nan_to_num(view.feature("hs4_x_org_insp_cnt_all"), nan=0.0) == 0
        novel = rest[(new_ent | new_pair)[rest]]
        explored = top_k(p, k_explore, rng, novel)
        short = k_explore - len(explored)
        if short > 0:
            others = np.setdiff1d(rest, explored)
            extra = rng.choice(others, size=min(short, len(others)), replace=False)
            explored = np.r_[explored, extra]
        return Selection(np.r_[exploit, explored])


class ThompsonPolicy(Policy):
    """Thompson sampling on the calibrated probability.

    Each declaration's rate is drawn from ``Beta(p m, (1 - p) m)`` (mean ``p``), where the
    evidence ``m = strength + n`` grows with ``n``, the enterprise's revealed results: little
    known about an enterprise, a wide draw that sometimes wins a place; much known, the draw
    stays near ``p``. The top ``k`` draws are inspected.
    """

    kind = "thompson"
    needs_model = True
    needs_features = True

    def __init__(self, strength: float = 20.0) -> None:
        self.strength = float(strength)
        if self.strength <= 0:
            raise ValueError("thompson: strength must be > 0")

    @property
    def name(self) -> str:
        return f"thompson-{self.strength:g}"

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        assert view.probability is not None
        p = np.clip(view.probability, 1e-6, 1 - 1e-6)
        m = self.strength + np.nan_to_num(view.feature("ent_insp_cnt_all"), nan=0.0)
        draw = rng.beta(p * m, (1 - p) * m)
        return Selection(top_k(draw, k, rng))


POLICIES: dict[str, type[Policy]] = {}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Make a policy class available by its ``kind`` to :func:`parse_policy` (and the CLI)."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    POLICIES[cls.kind] = cls
    return cls


for _cls in (RandomPolicy, LegacyPolicy, ExploitPolicy, HybridPolicy, ThompsonPolicy):
    register_policy(_cls)

DEFAULT_POLICIES = ("random", "legacy", "exploit", "hybrid:explore=0.1,by=random", "thompson")


def parse_policy(spec: str) -> Policy:
    """``kind[:key=value,...]`` -> a policy instance (values are numbers when they parse).

    Examples: ``exploit``, ``hybrid:explore=0.2,by=uncertainty``, ``thompson:strength=10``.
    """
    kind, _, args = spec.partition(":")
    cls = POLICIES.get(kind.strip())
    if cls is None:
        raise ValueError(f"unknown policy {kind!r}; known: {', '.join(sorted(POLICIES))}")
    options: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"policy option {item!r} is not key=value")
        options[key.strip()] = _number(value.strip())
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"policy {kind!r}: {exc}") from exc


def _number(text: str) -> Any:
    convert: tuple[Callable[[str], Any], ...] = (int, float)
    for fn in convert:
        try:
            return fn(text)
        except ValueError:
            continue
    return text
