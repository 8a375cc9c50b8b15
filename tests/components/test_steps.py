"""The step functions' own logic: dated data paths, data fingerprints, the last pushed model, flags."""

import json
import os

import pytest

from bertline import schema
from bertline.registry import latest_pushed
from bertline.components import steps


def _tsv(directory, text="label\ttext\npositive\tgood\n"):
  os.makedirs(directory, exist_ok=True)
  for split in ("train", "dev"):
    with open(os.path.join(directory, f"{split}.tsv"), "w") as f:
      f.write(text)


def test_dated_data_path_is_filled_in_and_a_missing_day_is_named(tmp_path):
  _tsv(tmp_path / "tweets" / "2026-11-23")
  template = str(tmp_path / "tweets" / "{date}")
  resolved = steps.resolve_data(template, "", 0, "mrpc", "", "2026-11-23", str(tmp_path / "b"))
  assert resolved.data_dir == str(tmp_path / "tweets" / "2026-11-23")
  assert resolved.date == "2026-11-23" and resolved.task == "mrpc"
  same = steps.resolve_data(str(tmp_path / "tweets" / "{{date}}"), "", 0, "mrpc", "",
                            "2026-11-23", str(tmp_path / "b"))
  assert same.data_dir == resolved.data_dir
  with pytest.raises(FileNotFoundError, match=r"data\.path .*2026-11-30 not found \(from .*\{date\}.* on 2026-11-30\)"):
    steps.resolve_data(template, "", 0, "mrpc", "", "2026-11-30", str(tmp_path / "b"))


def test_run_date():
  assert steps.run_date("2026-01-31") == "2026-01-31"
  import datetime
  today = datetime.datetime.now(datetime.timezone.utc).date()
  # Today in UTC (a run straddling midnight may see the next day).
  assert datetime.date.fromisoformat(steps.run_date()) - today in (datetime.timedelta(0),
                                                                   datetime.timedelta(days=1))
  with pytest.raises(ValueError, match=r"run date '31/01/2026' is not YYYY-MM-DD"):
    steps.run_date("31/01/2026")


def test_fingerprint_follows_the_content_not_the_write(tmp_path):
  _tsv(tmp_path / "d")
  first = steps.fingerprint_dir(str(tmp_path / "d"))
  _tsv(tmp_path / "d")  # rewritten, identical
  assert steps.fingerprint_dir(str(tmp_path / "d")) == first
  _tsv(tmp_path / "d", "label\ttext\nnegative\tbad\n")  # same size, new content
  assert steps.fingerprint_dir(str(tmp_path / "d")) != first
  os.makedirs(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="holds no files"):
    steps.fingerprint_dir(str(tmp_path / "empty"))


def test_builtin_tweets_bring_their_task(tmp_path):
  resolved = steps.resolve_data("", "tweets", 50, "", "", "2026-11-23", str(tmp_path / "t"))
  data_dir, task, task_config = steps.data_source("tweets", resolved.data_dir, "", "", "")
  assert sorted(os.listdir(data_dir)) == ["dev.tsv", "test.tsv", "train.tsv", "tweets_task.yaml"]
  from bertline.preprocessing import processors
  spec = processors.get_task(None, task_config)
  assert spec.name == "tweets" and task == ""
  with open(os.path.join(data_dir, "train.tsv"), "rb") as f:
    assert len(f.read().splitlines()) == 1 + 40  # header + 80% of 50


def _push(registry, version, complete=True, model_dir=""):
  path = registry / str(version)
  (path / "assets").mkdir(parents=True)
  if model_dir:
    (path / "assets" / schema.ASSET_METADATA).write_text(json.dumps({"model_dir": model_dir}))
  if complete:
    (path / schema.PUSH_COMPLETE_MARKER).write_text("{}")
  return str(path)


def test_latest_pushed_skips_incomplete_versions_and_warm_start_finds_its_model_dir(tmp_path):
  registry = tmp_path / "registry"
  assert latest_pushed(str(registry)) == ""
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  _push(registry, 9, model_dir=str(model_dir))
  good = _push(registry, 10, model_dir=str(model_dir))
  _push(registry, 11, complete=False)  # an interrupted push
  (registry / "notes").mkdir()
  assert latest_pushed(str(registry)) == good
  assert steps.warm_start_checkpoint(good) == str(model_dir)
  gone = _push(registry, 12, model_dir=str(tmp_path / "deleted"))
  assert steps.warm_start_checkpoint(gone) == ""  # cold start, with a warning


def test_train_settings_survive_kfps_struct_doubles():
  """kfp passes dict parameters as protobuf Structs: every number arrives as a double."""
  from_kfp = {"seed": 1.0, "batch_size": 16.0, "learning_rate": 1e-4, "epochs": 3.0,
              "max_steps": 8.0, "xla": False}
  settings = steps.normalize_train_settings(from_kfp)
  assert settings == {"batch_size": 16, "epochs": 3.0, "learning_rate": 1e-4, "max_steps": 8,
                      "seed": 1, "xla": False}
  assert all(type(settings[k]) is int for k in ("seed", "batch_size", "max_steps"))
  assert type(settings["epochs"]) is float  # a float field stays a float
  assert steps.normalize_train_settings({"seed": 1.5}) == {"seed": 1.5}  # refused later, by name


def test_a_run_configs_data_settings_reach_preprocess(tmp_path):
  """data.chunk_bytes is PreprocessConfig's own setting: one declaration, in the run config too."""
  from bertline import resources
  from bertline.pipeline import config as config_lib
  data = tmp_path / "sst"
  data.mkdir()
  rows = "".join(f"review number {i} was {'good' if i % 2 else 'bad'}\t{i % 2}\n"
                 for i in range(400))
  for split in ("train", "dev"):
    (data / f"{split}.tsv").write_text("sentence\tlabel\n" + rows)
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  size = (data / "train.tsv").stat().st_size
  shards = {}
  for chunk_bytes in (None, size // 3 + 1):
    overrides = [f"data.path={data}", "data.task=sst-2", "data.max_seq_length=16"]
    overrides += [f"data.chunk_bytes={chunk_bytes}"] if chunk_bytes else []
    d = config_lib.from_dict({}, overrides=overrides).data
    assert d.preprocess_settings().get("chunk_bytes") == chunk_bytes
    out = str(tmp_path / f"out-{chunk_bytes}")
    metadata = steps.preprocess(str(data), out, d.task, d.task_config, vocab,
                                d.preprocess_settings())
    assert metadata["max_seq_length"] == 16 and metadata["splits"]["train"]["num_examples"] == 400
    shards[chunk_bytes] = len(metadata["splits"]["train"]["files"])
  assert shards == {None: 1, size // 3 + 1: 3}


def _pushed(tmp_path, key, model_dir):
  pushed = tmp_path / "registry" / "7"
  (pushed / schema.ASSETS_DIR).mkdir(parents=True)
  (pushed / schema.ASSETS_DIR / schema.ASSET_METADATA).write_text(
      json.dumps({"training_key": key, "model_dir": str(model_dir)}))
  return str(pushed)


def test_the_training_of_the_model_in_production_is_reused_only_for_the_same_key(tmp_path):
  trained = tmp_path / "trained"
  (trained / schema.BEST_SUBDIR).mkdir(parents=True)
  for name, text in {schema.MODEL_CONFIG_FILE: "{}", schema.LABELS_FILE: "a\nb\n",
                     f"{schema.BEST_SUBDIR}/ckpt-8.index": "i",
                     f"{schema.BEST_SUBDIR}/ckpt-8.data-00000-of-00001": "d",
                     f"{schema.BEST_SUBDIR}/checkpoint": 'model_checkpoint_path: "ckpt-8"'}.items():
    (trained / name).write_text(text)
  pushed = _pushed(tmp_path, "k1", trained)
  assert steps.production_training(pushed, "k1") == str(trained)
  assert steps.production_training(pushed, "k2") == ""  # another training: train
  assert steps.production_training("", "k1") == ""  # nothing in production (or caching off)
  steps.reuse_training(str(trained), str(tmp_path / "new"))
  for name in (schema.MODEL_CONFIG_FILE, schema.LABELS_FILE, f"{schema.BEST_SUBDIR}/ckpt-8.index",
               f"{schema.BEST_SUBDIR}/checkpoint"):
    assert (tmp_path / "new" / name).read_text() == (trained / name).read_text()
  # Its model_dir gone (a pipeline root cleaned up): train again.
  for f in (trained / schema.BEST_SUBDIR).iterdir():
    f.unlink()
  assert steps.production_training(pushed, "k1") == ""


def test_pretrain_input_is_fingerprinted_by_content_and_a_typo_is_named(tmp_path):
  (tmp_path / "a.txt").write_text("one\n")
  (tmp_path / "b.txt").write_text("two\n")
  pattern = str(tmp_path / "*.txt")
  first = steps.fingerprint_patterns([pattern])
  assert steps.fingerprint_patterns([]) == ""
  (tmp_path / "b.txt").write_text("two, edited\n")
  assert steps.fingerprint_patterns([pattern]) != first
  with pytest.raises(FileNotFoundError, match=r"pretrain\.input .*/nope/\*\.txt: no file matches"):
    steps.resolve_data(str(tmp_path), "", 0, "mrpc", "", "2026-11-23", str(tmp_path / "b"),
                       pretrain_input=[str(tmp_path / "nope" / "*.txt")])
