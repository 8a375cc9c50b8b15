"""What every benchmark here does before it prints a ratio (issue 16).

* `quiet_load()`: the 1-minute load average, after waiting (up to settle_s)
  for the previous measurement's own load to decay. Recorded before every
  timed phase.
* `alternating_rates(fns, ...)`: rounds that alternate between the
  contenders, so a busier stretch of the machine never falls on one only;
  each contender keeps every round's rate.
* `verdict(loads, rounds)`: publishable only when every recorded load was at
  most 1.0 and no contender's rounds spread more than 10% ((max-min)/max).
  Scripts print the verdict beside the ratio, and BENCHMARKS.md takes only
  publishable ones.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Sequence, Tuple

MAX_LOAD = 1.0
MAX_SPREAD = 0.10


def quiet_load(settle_s: float = 120.0, quiet: float = 0.7) -> float:
  deadline = time.time() + settle_s
  while os.getloadavg()[0] >= quiet and time.time() < deadline:
    time.sleep(5)
  return os.getloadavg()[0]


def alternating_rates(fns: Dict[str, Callable[[], int]], seconds: float,
                      rounds: int = 3) -> Dict[str, List[float]]:
  """Items per second of each function (it returns how many items it did), per round."""
  for fn in fns.values():
    fn()  # warm-up: tracing, compilation, first allocations
  out: Dict[str, List[float]] = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      n, start = 0, time.perf_counter()
      while True:
        n += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / rounds:
          break
      out[name].append(n / elapsed)
  return out


def spread(values: Sequence[float]) -> float:
  return (max(values) - min(values)) / max(values) if values and max(values) > 0 else 0.0


def verdict(loads: Dict[str, float], rounds: Dict[str, Sequence[float]]) -> Tuple[bool, str]:
  """(publishable, one line saying why or why not)."""
  high = {k: v for k, v in loads.items() if v > MAX_LOAD}
  wide = {k: spread(v) for k, v in rounds.items() if spread(v) > MAX_SPREAD}
  if not high and not wide:
    return True, (f"publishable: load at most {max(loads.values(), default=0):.2f}, rounds "
                  f"spread at most {max((spread(v) for v in rounds.values()), default=0):.1%}")
  why = [f"load {v:.2f} > {MAX_LOAD} before {k}" for k, v in high.items()]
  why += [f"{k} rounds spread {v:.0%} > {MAX_SPREAD:.0%}" for k, v in wide.items()]
  return False, "NOT PUBLISHABLE: " + "; ".join(why)
