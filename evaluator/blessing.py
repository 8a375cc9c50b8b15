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
  checks = []
  for name, bound in sorted(thresholds.items()):
    check_metric_name(name, "threshold")
    checks.append(_check(name, "threshold", candidate.get(name), bound, "threshold"))
  if baseline is not None:
    names = list(compare) if compare else sorted(set(thresholds) | {"eval_accuracy"})
    checks += _baseline_checks(candidate, baseline, names, max_regression)
  checks += _finite_checks(candidate, {c["metric"] for c in checks})
  checks += _split_checks(candidate)
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


def _check(name: str, kind: str, value: Optional[float], bound: float,
           reference: str) -> Dict[str, Any]:
  """One check of metric `name` against `bound`, from the side its direction says."""
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
  return {"metric": name, "kind": kind, "value": value, "bound": bound, "passed": passed,
          "reason": reason}


def _baseline_checks(candidate: Dict[str, Any], baseline: Dict[str, Any], names: Sequence[str],
                     max_regression: float) -> List[Dict[str, Any]]:
  """Each compared metric may be worse than the production model's by max_regression at most."""
  checks = []
  for name in names:
    check_metric_name(name, "compare")
    base = baseline.get(name)
    if base is None:
      continue
    higher_better = metrics_lib.SCALAR_METRICS[name]
    bound = base - max_regression if higher_better else base + max_regression
    checks.append(_check(name, "baseline", candidate.get(name), bound,
                         f"baseline {_fmt(base)} {'-' if higher_better else '+'} "
                         f"max_regression {_fmt(max_regression)}"))
  return checks


def _finite_checks(candidate: Dict[str, Any], checked: set) -> List[Dict[str, Any]]:
  """Loss and accuracy must be finite even when no bound names them: a diverged model fails."""
  checks = []
  for name in ("eval_loss", "eval_accuracy"):
    value = candidate.get(name)
    if name not in checked and value is not None and not math.isfinite(value):
      checks.append({"metric": name, "kind": "finite", "value": value, "bound": None,
                     "passed": False, "reason": f"FAIL {name} is {value} (not a finite number; "
                     "the model diverged): never blessed"})
  return checks


def _split_checks(candidate: Dict[str, Any]) -> List[Dict[str, Any]]:
  """A split whose examples all have one label cannot tell a model from one that always answers
  that label (accuracy 1.0 either way): a model evaluated on it is never blessed."""
  support = candidate.get("support") or {}
  present = [label for label, count in support.items() if count > 0]
  if len(support) < 2 or len(present) != 1:
    return []
  return [{"metric": "labels_in_split", "kind": "data", "value": 1, "bound": 2,
           "passed": False,
           "reason": f"FAIL every one of the {candidate.get('num_examples')} evaluated examples "
                     f"has label {present[0]!r}: a model that always answers {present[0]!r} "
                     "would score the same; evaluate on a split with two labels or more"}]


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
