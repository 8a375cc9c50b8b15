"""Best-checkpoint and early-stopping bookkeeping: plain Python, no TensorFlow."""

import subprocess
import sys

from bertline.trainer.tracking import BestTracker


def _eval(step, loss, accuracy):
  return {"step": step, "eval_loss": loss, "eval_accuracy": accuracy}


def test_lower_loss_is_better_and_patience_counts_evaluations_without_improvement():
  tracker = BestTracker("eval_loss", patience=2)
  assert tracker.update(_eval(10, 0.9, 0.5)) is True
  assert tracker.update(_eval(20, 0.7, 0.6)) is True
  assert tracker.update(_eval(30, 0.8, 0.7)) is False and not tracker.should_stop
  assert tracker.update(_eval(40, 0.7, 0.7)) is False  # equal is not better
  assert tracker.should_stop and tracker.stale == 2
  assert tracker.best_value == 0.7 and tracker.best_metrics["step"] == 20
  assert tracker.last_metrics["step"] == 40 and tracker.last_metrics["improved"] is False


def test_accuracy_higher_is_better_and_zero_patience_never_stops():
  tracker = BestTracker("eval_accuracy", patience=0)
  for step, accuracy in enumerate([0.5, 0.4, 0.3, 0.2]):
    tracker.update(_eval(step, 1.0, accuracy))
  assert tracker.best_value == 0.5 and tracker.stale == 3 and not tracker.should_stop


def test_a_resumed_tracker_continues_the_count_from_the_history():
  history = [dict(_eval(10, 0.9, 0.5), improved=True), dict(_eval(20, 1.0, 0.5), improved=False)]
  tracker = BestTracker("eval_loss", patience=2, best_value=0.9, best_metrics=history[0],
                        history=history)
  assert tracker.stale == 1 and tracker.last_metrics["step"] == 20
  assert tracker.update(_eval(30, 0.95, 0.5)) is False and tracker.should_stop


def test_tracking_and_the_train_config_import_no_tensorflow():
  """The pipeline validates run configs with TrainConfig; compiling must not load TensorFlow."""
  code = ("import sys, bertline.trainer.tracking, bertline.trainer.config, "
          "bertline.pipeline.config; print(sorted(m for m in sys.modules "
          "if m.split('.')[0] in ('tensorflow', 'keras')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"
