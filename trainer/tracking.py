"""Which evaluation is the best so far, and when to stop early: plain Python, no TensorFlow.

  tracker = BestTracker("eval_loss", patience=3)
  improved = tracker.update({"step": 100, "eval_loss": 0.41, ...})
  if tracker.should_stop: ...

A resumed run rebuilds the tracker from the model_dir's eval history and
best.json, so early stopping counts the evaluations before the interruption.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

LOWER_IS_BETTER = ("eval_loss",)


class BestTracker:
  """Tracks the best value of `metric` and the evaluations since it improved.

  Args:
    metric: str. The metric compared (eval_loss: lower is better; others higher).
    patience: int. Stop after this many evaluations without improvement (0: never).
    best_value: float or None. The best value recorded before a resume.
    best_metrics: dict. That evaluation's metrics.
    history: the evaluations before a resume, oldest first, each with its
      "improved" flag (as update() records it).
  """

  def __init__(self, metric: str, patience: int = 0, best_value: Optional[float] = None,
               best_metrics: Optional[Dict[str, Any]] = None,
               history: Iterable[Dict[str, Any]] = ()):
    self.metric = metric
    self.patience = patience
    self.best_value = best_value
    self.best_metrics = dict(best_metrics or {})
    self.last_metrics: Dict[str, Any] = {}
    self.stale = 0
    for record in history:
      self.stale = 0 if record.get("improved") else self.stale + 1
      self.last_metrics = record

  def is_better(self, value: float) -> bool:
    if self.best_value is None:
      return True
    return value < self.best_value if self.metric in LOWER_IS_BETTER else value > self.best_value

  def update(self, metrics: Dict[str, Any]) -> bool:
    """Records one evaluation (adding its "improved" flag); returns whether it is the new best."""
    improved = self.is_better(metrics[self.metric])
    metrics["improved"] = improved
    if improved:
      self.best_value, self.stale, self.best_metrics = metrics[self.metric], 0, dict(metrics)
    else:
      self.stale += 1
    self.last_metrics = metrics
    return improved

  @property
  def should_stop(self) -> bool:
    return bool(self.patience) and self.stale >= self.patience
