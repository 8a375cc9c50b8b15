"""evaluator/report.py: report.html opens in a real headless browser (Debian's chromium) with no
console error and no request off the file, is not blank, and shows metrics.json's numbers, the
blessing's checks, both curves of a binary task and the most confidently wrong examples."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from bertline import schema
from bertline.evaluator import blessing as blessing_lib
from bertline.evaluator import evaluate, metrics as metrics_lib, report
from bertline.evaluator.config import EvaluateConfig
from tests.evaluator import browser

# Every number the page tags: [data-metric, shown text, exact value].
READ_NUMBERS = ("[...document.querySelectorAll('[data-metric]')].map(e => "
                "[e.dataset.metric, e.textContent, e.dataset.value])")


def _at(metrics, path):
  value = metrics
  for part in path.split("."):
    value = value[int(part)] if isinstance(value, list) else value[part]
  return value


@pytest.fixture(scope="module")
def evaluation(tiny_model, tweets_data, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("evaluation"))
  result = evaluate.run(EvaluateConfig(tiny_model["model_dir"], tweets_data["data"],
                                       thresholds={"eval_accuracy": 0.2, "eval_loss": 5.0},
                                       output_dir=out))
  return result


def _check_page(path, metrics):
  with browser.Page("file://" + path) as page:
    assert page.errors() == []
    numbers = page.evaluate(READ_NUMBERS)
    png = page.screenshot()
    verdict = page.evaluate("document.getElementById('verdict').textContent")
  for where, shown, value in numbers:
    want = _at(metrics, where)
    assert float(value) == pytest.approx(want, abs=1e-12), where
    assert float(shown) == pytest.approx(want, abs=5e-5), (where, shown)
  image = tf.io.decode_png(png).numpy()[..., :3].reshape(-1, 3)
  assert image.shape[0] > 500 * 500
  colours = np.unique(image[::7], axis=0)
  assert len(colours) > 20 and image.std() > 20  # text, tables and colours: not blank
  return numbers, verdict


def test_the_report_of_a_real_evaluation_shows_its_numbers_in_a_browser(evaluation):
  metrics = json.load(open(evaluation["metrics_file"]))
  path = evaluation["report_file"]
  assert path == os.path.join(os.path.dirname(evaluation["metrics_file"]), "report.html")
  numbers, verdict = _check_page(path, metrics)
  shown = {where for where, _, _ in numbers}
  labels = metrics["labels"]
  assert {"eval_accuracy", "eval_loss", "macro_f1", "num_examples"} <= shown
  assert {f"{k}.{label}" for k in ("precision", "recall", "f1", "support")
          for label in labels} <= shown
  assert {f"confusion_matrix.{i}.{j}" for i in range(3) for j in range(3)} <= shown
  assert verdict == ("BLESSED" if evaluation["blessing"]["blessed"] else "NOT BLESSED")
  text = open(path).read()
  assert "http://" not in text and "https://" not in text and "<script" not in text
  for check in evaluation["blessing"]["checks"]:
    assert f"{check['metric']} ({check['kind']})" in text


def test_the_wrong_examples_are_the_most_confident_mistakes_with_their_words(evaluation,
                                                                             tweets_data):
  metrics = evaluation["metrics"]
  text = open(evaluation["report_file"]).read()
  rows = re.findall(r"<tr><td class=text>(dev-\d+)</td><td class=text>(\w+)</td>"
                    r"<td class=text>(\w+)</td><td>([0-9.]+)</td><td class=text>([^<]*)", text)
  wrong = metrics["num_examples"] - round(metrics["eval_accuracy"] * metrics["num_examples"])
  assert len(rows) == min(report.WRONG_EXAMPLES, wrong) > 0
  confidences = [float(r[3]) for r in rows]
  assert confidences == sorted(confidences, reverse=True)
  with open(os.path.join(tweets_data["tsv"], "dev.tsv"), encoding="utf-8",
            errors="replace") as f:
    lines = f.read().split("\n")[1:]
  for guid, true, predicted, _, words in rows:
    assert true != predicted
    label, tweet = lines[int(guid.split("-")[1]) - 1].split("\t", 1)
    assert true == label
    # The words the model saw: the tweet lower-cased and split as WordPiece splits it.
    first = words.split()[0]
    assert first.replace("##", "") in tweet.lower(), (words, tweet)


def test_a_binary_task_draws_roc_and_precision_recall_and_escapes_text(tmp_path):
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 2, 120)
  logits = np.stack([np.zeros(120), 2 * labels - 1 + rng.normal(size=120)], axis=1)
  metrics = metrics_lib.classification_metrics(labels, logits, label_names=["neg", "pos"])
  metrics.update(model="m", split="dev", data_dir="d")
  decision = blessing_lib.decide(metrics, {"eval_accuracy": 0.99})
  wrong = [{"guid": "dev-7", "label": "pos", "predicted": "neg", "confidence": 0.97,
            "text_a": "<script>alert('x')</script> & co", "text_b": "second <b>text</b>"}]
  path = report.write(str(tmp_path), metrics, decision, wrong)
  numbers, verdict = _check_page(path, metrics)
  assert verdict == "NOT BLESSED"
  text = open(path).read()
  assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text
  assert "<script" not in text and "second &lt;b&gt;text&lt;/b&gt;" in text
  for curve, points in (("roc", len(metrics["roc_curve"]["fpr"])),
                        ("pr", len(metrics["pr_curve"]["recall"]))):
    (polyline,) = re.findall(rf'<svg id="{curve}".*?<polyline points="([^"]+)"', text)
    assert len(polyline.split()) == points + 1  # from its start through every threshold
  area = float(re.search(r"ROC \(area ([0-9.]+)", text).group(1))
  pos = np.exp(metrics_lib.log_softmax(logits))[:, 1]
  p, n = pos[labels == 1][:, None], pos[labels == 0][None, :]
  assert area == pytest.approx(float(np.mean((p > n) + 0.5 * (p == n))), abs=1e-4)


def test_evaluate_prints_where_the_report_is(tiny_model, tweets_data, tmp_path, capsys):
  assert evaluate.main(["--model-dir", tiny_model["model_dir"], "--data-dir",
                        tweets_data["data"], "--output-dir", str(tmp_path)]) == 0
  assert f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out
  assert os.path.exists(tmp_path / schema.METRICS_FILE)
