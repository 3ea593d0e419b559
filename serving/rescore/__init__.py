"""Batch rescoring of enterprises: profiles for the whole register, locally or on Dask.

Public entry points: :func:`rescore` (run), :func:`~serving.rescore.db.get_profile` and
:func:`~serving.rescore.db.list_profiles` (read back, as the API and committee pages do).
Submodules are imported lazily so ``import serving.rescore`` stays cheap.
"""

from __future__ import annotations

from serving.rescore.partition import partition_of
from serving.rescore.run import RescoreResult, period_bounds, rescore

__all__ = ["RescoreResult", "partition_of", "period_bounds", "rescore"]
