"""Multi-stream patterns: race, parallel, batched, pool and consensus.

- :func:`race` — every candidate at once; the fastest *valid* stream wins, the rest stop.
- :func:`parallel` / :func:`batched` — fan out tasks under a concurrency limit; outcomes in
  input order, failures collected.
- :func:`pool` — a long-lived worker pool: ``submit()``, ``drain()``, ``close()``, ``stats``.
- :func:`consensus` — several generations, one answer: majority, unanimous or best, with
  field-level voting for structured outputs.

Each of race, parallel/batched and consensus is one parent span (``l0.race``,
``l0.parallel``, ``l0.consensus``) over the sessions it starts. A 429 with ``Retry-After``
seen by one task makes the others going to the same target wait (see :mod:`l0.multi.cooldown`).
"""

from __future__ import annotations

from l0.multi._tasks import Progress, Task, TaskOutcome, TaskStatus
from l0.multi.consensus import (
    MISSING,
    ConsensusError,
    ConsensusOutput,
    ConsensusResult,
    Disagreement,
    FieldConsensus,
    Strategy,
    Vote,
    consensus,
)
from l0.multi.cooldown import (
    Cooldowns,
    cooldowns,
    current_rate_limit_key,
    rate_limit_scope,
    rate_limited,
)
from l0.multi.parallel import ParallelError, ParallelResult, batched, parallel
from l0.multi.pool import Pool, PoolClosedError, PoolStats, pool
from l0.multi.race import Candidate, RaceError, RaceResult, RaceState, Until, race

__all__ = [
    "MISSING",
    "Candidate",
    "ConsensusError",
    "ConsensusOutput",
    "ConsensusResult",
    "Cooldowns",
    "Disagreement",
    "FieldConsensus",
    "ParallelError",
    "ParallelResult",
    "Pool",
    "PoolClosedError",
    "PoolStats",
    "Progress",
    "RaceError",
    "RaceResult",
    "RaceState",
    "Strategy",
    "Task",
    "TaskOutcome",
    "TaskStatus",
    "Until",
    "Vote",
    "batched",
    "consensus",
    "cooldowns",
    "current_rate_limit_key",
    "parallel",
    "pool",
    "race",
    "rate_limit_scope",
    "rate_limited",
]
