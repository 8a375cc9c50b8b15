"""The blessing: is a candidate model good enough to ship?

A gate as data, like TFX's evaluator: thresholds on metrics (eval_accuracy >=
0.9, eval_loss <= 0.4) and, when the model now in production is given as a
baseline, "no worse than it on the same examples by more than max_regression".
Every check is recorded as a reason, passed or failed, in blessing.json; push
reads the decision and refuses an unblessed model unless forced.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Dict, List, Optional, Sequence

from bertline import fileio, schema
from bertline.evaluator import metrics as metrics_lib

BLESSING_FORMAT_VERSION = 1


def parse_thresholds(specs: Optional[Sequence[str]], flag: str = "--threshold") -> Dict[str, float]:
  """["eval_accuracy=0.9", ...] -> {"eval_accuracy": 0.9}; errors name the flag and the fix."""
  thresholds: Dict[str, float] = {}
  for spec in specs or []:
    name, sep, value = spec.partition("=")
    name = name.strip()
    if not sep:
      raise ValueError(f"{flag} {spec!r}: expected METRIC=VALUE, e.g. eval_accuracy=0.9")
    check_metric_name(name, f"{flag} {spec!r}")
    try:
      thresholds[name] = float(value)
    except ValueError:
      raise ValueError(f"{flag} {spec!r}: {value!r} is not a number") from None
  return thresholds


def check_metric_name(name: str, where: str) -> None:
  if name not in metrics_lib.SCALAR_METRICS:
    raise ValueError(f"{where}: unknown metric {name!r}; choose one of "
                     f"{', '.join(metrics_lib.SCALAR_METRICS)}")


def _fmt(value: float) -> str:
  return f"{value:.6g}"


def decide(candidate: Dict[str, Any], thresholds: Optional[Dict[str, float]] = None,
           baseline: Optional[Dict[str, Any]] = None, max_regression: float = 0.0,
           compare: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Checks a candidate's metrics; returns the blessing record.

  Args:
    candidate: dict. metrics.classification_metrics() of the candidate.
    thresholds: dict of metric name to bound: a minimum for metrics where
      higher is better, a maximum for eval_loss.
    baseline: dict or None. The production model's metrics on the same examples.
    max_regression: float. How much worse than the baseline (absolute) a
      compared metric may be.
    compare: metric names compared with the baseline (default: eval_accuracy
      and every thresholded metric).
  Returns:
    {"blessed": bool, "reasons": [str], "checks": [{metric, kind, value, bound,
    passed}], ...}: every check, passed or failed, with its reason.
  """
  thresholds = dict(thresholds or {})
  if max_regression < 0:
    raise ValueError(f"--max-regression {max_regression} must be >= 0")
  checks: List[Dict[str, Any]] = []

  def add(name: str, kind: str, value: Optional[float], bound: float, reference: str) -> None:
    higher_better = metrics_lib.SCALAR_METRICS[name]
    if value is None:
      passed, reason = False, f"FAIL {name} is not defined for this task ({kind} {reference})"
    elif not math.isfinite(value):
      # NaN compares False with everything, so it would slip past a maximum
      # such as eval_loss's: a model with non-finite metrics is never blessed.
      passed, reason = False, (f"FAIL {name} is {value} (not a finite number; the model "
                               f"diverged): never blessed ({reference})")
    else:
      passed = value >= bound if higher_better else value <= bound
      op = (">=" if higher_better else "<=") if passed else ("<" if higher_better else ">")
      reason = f"{'PASS' if passed else 'FAIL'} {name} {_fmt(value)} {op} {_fmt(bound)} ({reference})"
    checks.append({"metric": name, "kind": kind, "value": value, "bound": bound, "passed": passed,
                   "reason": reason})

  for name, bound in sorted(thresholds.items()):
    check_metric_name(name, "threshold")
    add(name, "threshold", candidate.get(name), bound, "threshold")
  if baseline is not None:
    names = list(compare) if compare else sorted(set(thresholds) | {"eval_accuracy"})
    for name in names:
      check_metric_name(name, "compare")
      base = baseline.get(name)
      if base is None:
        continue
      higher_better = metrics_lib.SCALAR_METRICS[name]
      bound = base - max_regression if higher_better else base + max_regression
      add(name, "baseline", candidate.get(name), bound,
          f"baseline {_fmt(base)} {'-' if higher_better else '+'} max_regression {_fmt(max_regression)}")
  checked = {c["metric"] for c in checks}
  for name in ("eval_loss", "eval_accuracy"):  # checked even when no bound names them
    value = candidate.get(name)
    if name not in checked and value is not None and not math.isfinite(value):
      checks.append({"metric": name, "kind": "finite", "value": value, "bound": None,
                     "passed": False, "reason": f"FAIL {name} is {value} (not a finite number; "
                     "the model diverged): never blessed"})
  reasons = [c["reason"] for c in checks]
  if not checks:
    reasons.append("PASS no thresholds and no baseline were configured: nothing to check")
  return {
      "format_version": BLESSING_FORMAT_VERSION,
      "blessed": all(c["passed"] for c in checks),
      "reasons": reasons,
      "checks": checks,
      "thresholds": thresholds,
      "max_regression": max_regression,
      "candidate_metrics": {k: candidate.get(k) for k in metrics_lib.SCALAR_METRICS},
      "baseline_metrics": (None if baseline is None else
                           {k: baseline.get(k) for k in metrics_lib.SCALAR_METRICS}),
      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
  }


def write(output_dir: str, blessing: Dict[str, Any]) -> str:
  path = fileio.join(output_dir, schema.BLESSING_FILE)
  fileio.write_json_atomic(path, blessing)
  return path


def read(path: str) -> Dict[str, Any]:
  """Reads a blessing.json, with errors that say where it comes from."""
  if not fileio.exists(path):
    raise FileNotFoundError(f"blessing {path} not found; run `bertline evaluate` to write one.")
  try:
    blessing = json.loads(fileio.read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); re-run `bertline evaluate`.") from e
  if not isinstance(blessing, dict) or not isinstance(blessing.get("blessed"), bool):
    raise ValueError(f"{path} has no boolean 'blessed' key; it is not a bertline blessing.json.")
  return blessing
