"""The whole pipeline end to end on this machine: kfp's local execution and `bertline run`.

A tiny real model (the first two layers of the packaged MiniLM) on a few
hundred real tweets. Both runners walk one definition, so they share one
fixture run: kfp's SubprocessRunner runs the compiled pipeline once (each
component a subprocess, dsl.If included; it ignores caching, retries and
resources, which tests/pipeline/test_pipeline.py checks in the compiled YAML),
training and pushing a model; `bertline run` then starts from that registry
with the same run config, computes the same training key, reuses the kfp run's
training instead of training again and pushes no duplicate, before its own
re-runs reuse, gate and distil.
"""

import json
import os
import re
import sys

import pytest

from bertline import corpora, schema
from bertline.components import steps
from bertline.pipeline import config as config_lib
from bertline.pipeline import local_run
from bertline.pipeline import pipeline as pipeline_lib

# Every run here is given this date: left to the clock, a run that straddles
# midnight UTC scores into one day's folder and is looked for in the next.
DATE = "2026-01-31"


def _config(tiny_minilm, registry, threshold, score=None):
  return config_lib.from_dict({
      "data": {"builtin": "tweets", "limit": 300, "max_seq_length": 32},
      "model": {"init_checkpoint": tiny_minilm},
      "train": {"max_steps": 8, "batch_size": 16, "learning_rate": 1.0e-4, "seed": 1,
                "strategy": "cpu"},
      "evaluate": {"thresholds": {"eval_accuracy": threshold}, "baseline": "last_pushed"},
      "push": {"to": registry},
      "score": score or {},
  })


def _score_section(tmp_path, output="scores"):
  """New rows to score after the push: real tweets (one bad line), one file per date."""
  def valid(text):
    try:
      return bool(text.decode("utf-8").strip())
    except UnicodeDecodeError:
      return False
  rows = [text for _, text in corpora.read_tweets() if valid(text)][:40] + [b"\xff\xfe"]
  (tmp_path / "new").mkdir(exist_ok=True)
  (tmp_path / "new" / f"{DATE}.txt").write_bytes(b"\n".join(rows) + b"\n")
  return {"input": str(tmp_path / "new" / "{date}.txt"),
          "output": str(tmp_path / output / "{date}")}


def _scores(tmp_path, output="scores"):
  with open(tmp_path / output / DATE / "summary.json") as f:
    return json.load(f)


def _versions(registry):
  if not os.path.isdir(registry):
    return []
  return sorted(n for n in os.listdir(registry)
                if os.path.exists(os.path.join(registry, n, schema.PUSH_COMPLETE_MARKER)))


def _run_with_kfp_local(config, tmp_path, monkeypatch, root="pipeline_root"):
  from kfp import local
  # The components run `python3 -m kfp.dsl.executor_main`: this interpreter's.
  monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  monkeypatch.chdir(tmp_path)
  local.init(runner=local.SubprocessRunner(use_venv=False),
             pipeline_root=str(tmp_path / root), raise_on_error=True)
  return pipeline_lib.build(config)(**{**pipeline_lib.parameters(config), "run_date": DATE})


def _blessings(root):
  return [json.loads(p.read_text())["blessed"] for p in root.rglob(schema.BLESSING_FILE)]


@pytest.fixture(scope="module")
def kfp_run(tiny_minilm, tmp_path_factory):
  """The one trained pipeline run both end-to-end tests build on: kfp's local runner, blessed,
  pushed to a registry and scoring the day's rows. `bertline run` then starts from it."""
  root = tmp_path_factory.mktemp("kfp_run")
  registry = str(root / "registry")
  config = _config(tiny_minilm, registry, threshold=0.0, score=_score_section(root))
  with pytest.MonkeyPatch.context() as monkeypatch:
    _run_with_kfp_local(config, root, monkeypatch)
  return {"root": root, "registry": registry}


def test_kfp_local_run_pushes_a_blessed_model_that_answers(kfp_run):
  tmp_path, registry = kfp_run["root"], kfp_run["registry"]
  (version,) = _versions(registry)
  # The run ended by scoring the day's new rows with the version it pushed.
  scores = _scores(tmp_path)
  assert (scores["model_version"], scores["scored"], scores["rejected"]) == (version, 40, 1)
  pushed = os.path.join(registry, version)
  answer = local_run.ask(pushed, "I love this phone, the battery lasts all day!")
  assert answer["label"] in ("negative", "neutral", "positive")
  assert abs(sum(answer["probabilities"]) - 1.0) < 1e-5

  # The artifacts the Kubeflow UI shows: scalar metrics and the confusion matrix.
  root = tmp_path / "pipeline_root"
  metrics_files = list(root.rglob("metrics.json"))
  (evaluation,) = [p for p in metrics_files if (p.parent / schema.BLESSING_FILE).exists()]
  metrics = json.loads(evaluation.read_text())
  blessing = json.loads((evaluation.parent / schema.BLESSING_FILE).read_text())
  assert blessing["blessed"] is True
  labels, matrix = steps.confusion(metrics, "")
  assert labels == ["negative", "neutral", "positive"]
  assert sum(map(sum, matrix)) == metrics["num_examples"] == 30  # 10% of 300 tweets: dev
  # The pushed model came from this run's model_dir, and warm start can find it.
  assert steps.warm_start_checkpoint(pushed).startswith(str(root))


@pytest.mark.slow  # a second whole kfp run; `bertline run`'s e2e test checks the same reuse
def test_kfp_local_rerun_pushes_no_duplicate(tiny_minilm, tmp_path, monkeypatch):
  registry = str(tmp_path / "registry")
  config = _config(tiny_minilm, registry, threshold=0.0)
  _run_with_kfp_local(config, tmp_path, monkeypatch)
  (version,) = _versions(registry)
  # A re-run with unchanged data and settings trains the same model (seeded) under a new
  # artifact path, compares it with the pushed one, blesses it - and pushes no duplicate:
  # the training key says it is already in production (as a cached train task would).
  _run_with_kfp_local(config, tmp_path, monkeypatch, root="pipeline_root_2")
  assert _blessings(tmp_path / "pipeline_root_2") == [True]
  assert _versions(registry) == [version]
  assert not list((tmp_path / "pipeline_root_2").rglob("saved_model.pb"))  # nothing exported


@pytest.mark.slow
def test_kfp_local_run_does_not_push_an_unblessed_model(tiny_minilm, tmp_path, monkeypatch):
  registry = str(tmp_path / "registry")
  config = _config(tiny_minilm, registry, threshold=1.01)  # unreachable: never blessed
  _run_with_kfp_local(config, tmp_path, monkeypatch)
  assert _versions(registry) == []
  assert _blessings(tmp_path / "pipeline_root") == [False]


def test_bertline_run_reuses_finished_steps_and_gates_on_the_baseline(tiny_minilm, kfp_run,
                                                                      tmp_path, capsys, caplog):
  registry = kfp_run["registry"]
  (kfp_version,) = _versions(registry)
  # The same run config under `bertline run`: one pipeline definition, so the same training
  # key as the kfp run's. It trains the same (seeded) model, compares it with the version the
  # kfp run pushed, blesses it - and pushes no duplicate: it is already in production.
  config = _config(tiny_minilm, registry, threshold=0.0,
                   score=_score_section(tmp_path, output="local_scores"))
  work = str(tmp_path / "work")
  caplog.set_level("INFO", logger="bertline")
  first = local_run.run(config, work_dir=work, run_date=DATE, sentence="what a horrible day")
  out = capsys.readouterr().out
  # It trains nothing: the model in production was trained with this run's training key, so
  # its training (the kfp run's model_dir) is reused, as a cache hit would serve it.
  (reuse,) = [r.getMessage() for r in caplog.records
              if r.getMessage().startswith("Reused the training of the model in production")]
  assert str(kfp_run["root"] / "pipeline_root") in reuse
  assert not [r for r in caplog.records if r.name == "bertline.train"]
  assert first.blessed and first.pushed == os.path.join(registry, kfp_version)
  assert "already the last pushed one" in out and _versions(registry) == [kfp_version]
  assert first.scored["model"] == first.pushed and first.scored["scored"] == 40
  assert first.answer["label"] in ("negative", "neutral", "positive")
  assert "confusion matrix" in out and f"pushed: {first.pushed}" in out
  (report,) = re.findall(r"^report: (\S+)$", out, flags=re.M)
  assert os.path.isfile(report) and "evaluation" in report.split(os.sep)

  # A stricter re-run: the finished preprocess and train are reused, the same model is
  # compared with itself as the baseline, and the unmet threshold blocks the push.
  strict = config_lib.from_dict(config.to_dict(), overrides=["evaluate.thresholds={eval_accuracy: 1.01}"])
  caplog.clear()
  second = local_run.run(strict, work_dir=work, run_date=DATE, sentence=None)
  out = capsys.readouterr().out
  reused = [r.getMessage() for r in caplog.records if "unchanged inputs" in r.getMessage()]
  assert [m.split("]")[0] for m in reused] == ["[preprocess", "[train"]
  assert not second.blessed and second.pushed == "" and "not blessed" in out
  assert len(_versions(registry)) == 1
  # Unblessed, the run still scores the day's rows: with the model in production.
  assert second.scored["model"] == first.pushed and "scored: 40 rows, 1 rejected" in out
  assert _scores(tmp_path, "local_scores")["model"] == first.pushed
  assert any("baseline" in r for r in second.blessing["reasons"])
  assert len(os.listdir(os.path.join(work, "model"))) == 1  # one train step, reused since

  # A distilled, int8 student of the same teacher: preprocess and train are reused, the
  # 1-layer student is trained from the teacher's first layer, blessed and pushed as a
  # quantized version (model.tflite beside tokenizer/), which then answers and scores.
  distilled = config_lib.from_dict(config.to_dict(), overrides=[
      "distill={student_layers: 1, max_steps: 4}", "export.quantize=int8",
      "evaluate.baseline=", "evaluate.thresholds={eval_accuracy: 0.0}"])
  caplog.clear()
  third = local_run.run(distilled, work_dir=work, run_date=DATE, sentence="what a horrible day")
  reused = [r.getMessage().split("]")[0] for r in caplog.records
            if "unchanged inputs" in r.getMessage()]
  assert reused == ["[preprocess", "[train"]
  assert third.blessed and len(_versions(registry)) == 2
  assert third.pushed == os.path.join(registry, _versions(registry)[-1])
  assert sorted(os.listdir(third.pushed)) == sorted(
      ["assets", "assets.extra", "model.tflite", "tokenizer", schema.PUSH_COMPLETE_MARKER])
  (student,) = os.listdir(os.path.join(work, "student"))
  with open(os.path.join(work, "student", student, schema.MODEL_CONFIG_FILE)) as f:
    assert json.load(f)["num_hidden_layers"] == 1
  assert third.answer["label"] in ("negative", "neutral", "positive")
  assert abs(sum(third.answer["probabilities"]) - 1.0) < 1e-5
  assert third.scored["model"] == third.pushed and third.scored["scored"] == 40


def test_bertline_run_pretrains_on_the_train_texts_then_fine_tunes_the_pretrained_model(
    tiny_minilm, tmp_path, caplog):
  # Domain-adaptive pre-training as a pipeline step: the real Chinese reviews' train-split
  # texts (labels dropped) and a file of unlabeled reviews are pre-trained on, and train
  # fine-tunes that model. Dev and test texts never reach the pre-training corpus.
  unlabeled = tmp_path / "unlabeled"
  unlabeled.mkdir()
  reviews = [text for _, text in corpora.read_chinese_reviews(100)][-20:]
  (unlabeled / "more.txt").write_text("\n".join(reviews) + "\n", encoding="utf-8")
  config = config_lib.from_dict({
      "data": {"builtin": "chnsenticorp", "limit": 200, "max_seq_length": 32},
      "model": {"init_checkpoint": tiny_minilm},
      "pretrain": {"input": [str(unlabeled / "*.txt")], "labeled_texts": True,
                   "input_format": "documents", "max_seq_length": 32,
                   "train": {"max_steps": 3, "batch_size": 8, "seed": 1, "strategy": "cpu"}},
      "train": {"max_steps": 3, "batch_size": 8, "seed": 1, "strategy": "cpu"},
      # Unreachable: nothing is exported or pushed (the kfp run's test covers those).
      "evaluate": {"thresholds": {"eval_accuracy": 1.01}},
      "push": {"to": str(tmp_path / "registry")},
  })
  work = str(tmp_path / "work")
  caplog.set_level("INFO", logger="bertline")
  first = local_run.run(config, work_dir=work, run_date=DATE, sentence=None)
  assert not first.blessed and first.metrics["num_examples"] == 20  # 10% of 200 reviews

  (pt_data,) = [os.path.join(work, "pretrain-data", d)
                for d in os.listdir(os.path.join(work, "pretrain-data"))]
  texts = open(os.path.join(pt_data, steps.LABELED_TEXTS), encoding="utf-8").read().splitlines()
  tsv = os.path.join(work, "data", local_run.LATEST)

  def split_texts(split):
    with open(os.path.join(tsv, f"{split}.tsv"), encoding="utf-8") as f:
      return [line.rstrip("\n").split("\t")[1] for line in list(f)[1:]]
  assert texts == split_texts("train")  # every train row's text, in order, nothing else
  assert not set(texts) & set(split_texts("dev") + split_texts("test"))
  metadata = json.load(open(os.path.join(pt_data, schema.METADATA_FILE)))
  assert metadata["counts"]["documents"] == len(texts) + 20  # and the unlabeled file's

  (pretrained,) = [os.path.join(work, "pretrained", d)
                   for d in os.listdir(os.path.join(work, "pretrained"))]
  assert os.path.isdir(os.path.join(pretrained, schema.BEST_SUBDIR))
  # Train started from the pre-trained model_dir: its encoder loaded, its MLM heads unused.
  (loaded,) = [r.getMessage() for r in caplog.records
               if r.name == "bertline.model.checkpoints" and "classifier/kernel" in r.getMessage()]
  assert loaded.startswith("Loaded") and pretrained in loaded and "cls/predictions" in loaded
  (model,) = os.listdir(os.path.join(work, "model"))
  step = json.load(open(os.path.join(work, "model", model, local_run.DONE_FILE)))
  assert step["metadata"]["model"]["init_checkpoint"] == pretrained

  # Unchanged, a re-run reuses every step: the pre-training is cached by its inputs, and
  # train's key, which names the pre-trained model by its pretraining key, is unchanged too.
  caplog.clear()
  again = local_run.run(config, work_dir=work, run_date=DATE, sentence=None)
  reused = [r.getMessage().split("]")[0] for r in caplog.records
            if "unchanged inputs" in r.getMessage()]
  assert reused == ["[pretrain data", "[pretrain", "[preprocess", "[train", "[evaluate"]
  assert again.metrics == first.metrics


@pytest.mark.slow  # a whole kfp run more; `bertline run`'s test above walks the same definition
def test_kfp_local_run_pretrains_then_fine_tunes(tiny_minilm, tmp_path, monkeypatch):
  # The compiled pipeline under kfp's own executor: train's optional `pretrained` artifact is
  # wired from the pretrain task, and the fine-tuning starts from it.
  config = config_lib.from_dict({
      **_config(tiny_minilm, str(tmp_path / "registry"), threshold=1.01).to_dict(),
      "pretrain": {"labeled_texts": True, "max_seq_length": 32,
                   "train": {"max_steps": 2, "batch_size": 8, "seed": 1, "strategy": "cpu"}}})
  _run_with_kfp_local(config, tmp_path, monkeypatch)
  root = tmp_path / "pipeline_root"
  (key_file,) = root.rglob(steps.PRETRAINING_KEY_FILE)
  (train_config,) = [p for p in root.rglob(schema.TRAIN_CONFIG_FILE)
                     if not (p.parent / steps.PRETRAINING_KEY_FILE).exists()]
  assert json.loads(train_config.read_text())["init_checkpoint"] == str(key_file.parent)
  assert _blessings(root) == [False] and _versions(str(tmp_path / "registry")) == []
