"""How long work says where it is: one callback protocol, rendered only by the CLI.

Ingest, demo generation, the feature build, training, the backtest and rescoring take a
``progress`` argument of type :class:`Progress` and call it as they go. They never draw
anything themselves: ``guomen.cli`` turns the calls into a rich progress bar or log lines, tests
and benchmarks pass any function of the same shape. The module sits in ``features`` (the layer
every other package may import) and imports nothing.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """A callback told what long work is doing now.

    Two forms of call:

    * ``progress(step)``: the step named ``step`` starts (and the one before it, if any, is
      finished). Work of named steps: the feature build, training, the backtest.
    * ``progress(step, done, total)``: ``done`` of the ``total`` units of the work are finished
      and ``step`` says what runs now. Work that knows its size: ingest (input files), demo
      generation (steps), rescoring (partitions per stage, one ``step`` name per stage).

    A callback must accept both forms; it returns nothing and must not raise.
    """

    def __call__(self, step: str, /, done: int | None = None, total: int | None = None) -> None:
        """Say that ``step`` runs now (with ``done`` of ``total`` units finished, if counted)."""


def no_progress(step: str, /, done: int | None = None, total: int | None = None) -> None:
    """A :class:`Progress` that shows nothing (the default of work called without one)."""
