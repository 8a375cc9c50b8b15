"""exporter/serving_check.py: a real export's warmup requests replayed by a clean process, and the
outcome recorded as one check of the export's blessing."""

from __future__ import annotations

from bertline.evaluator import blessing as blessing_lib
from bertline.exporter import serving_check


def test_a_real_export_answers_its_warmup_requests_in_a_clean_process(exported):
  result = serving_check.check(exported["path"])
  assert result.passed, result.reason
  assert result.requests == 3
  # The child reports which modules it had: a pass means bertline was not among them.
  assert "(classification, serving_default)" in result.reason
  assert "without bertline" in result.reason


def _evaluation(blessed: bool):
  return blessing_lib.decide({"eval_accuracy": 0.9 if blessed else 0.1}, {"eval_accuracy": 0.5})


def test_the_outcome_is_one_check_of_the_exports_blessing(tmp_path):
  version = tmp_path / "7"
  version.mkdir()
  passed = serving_check.CheckResult(True, "3 warmup requests answered", 3, 9.5)
  failed = serving_check.CheckResult(False, "the SavedModel does not load (DataLossError: x)")
  path = serving_check.record(str(version), passed, _evaluation(True))
  written = blessing_lib.read(path)
  assert written["blessed"] is True
  assert written["reasons"][-1] == "PASS serving: 3 warmup requests answered"
  assert "seconds" not in written["serving_check"]  # a re-check writes the same bytes
  before = open(path, "rb").read()
  serving_check.record(str(version), passed, _evaluation(True) | {"created": written["created"]})
  assert open(path, "rb").read() == before
  # A failure unblesses, replacing the earlier serving entry rather than adding one.
  written = blessing_lib.read(serving_check.record(str(version), failed, written))
  assert written["blessed"] is False
  assert [c["metric"] for c in written["checks"]] == ["eval_accuracy", "serving"]
  assert written["reasons"][-1].startswith("FAIL serving: the SavedModel does not load")
  # An unblessed evaluation stays unblessed; no evaluation at all is never blessed.
  assert blessing_lib.read(serving_check.record(str(version), passed, _evaluation(False)))[
      "blessed"] is False
  alone = blessing_lib.read(serving_check.record(str(version), passed, None))
  assert alone["blessed"] is False and alone["reasons"][0].startswith("FAIL no evaluation")
