"""Checkpoints: a run resumes from the newest intact one, whatever was lost or cut."""

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from bertline import errors, schema
from bertline.trainer import train
from tests.reliability.conftest import bertline, last_line
from tests.trainer import helpers
from tests.trainer.conftest import lang_records  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
  return helpers.tiny_model_config(str(tmp_path_factory.mktemp("cfg") / "config.json"))


_config = helpers.train_config


def _sha(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _data_file(prefix):
  (data,) = [p for p in os.listdir(os.path.dirname(prefix))
             if p.startswith(os.path.basename(prefix) + ".data-")]
  return os.path.join(os.path.dirname(prefix), data)


def test_lost_state_file_truncated_checkpoint_and_killed_saves(lang_records, tiny_config, tmp_path,
                                                               caplog):
  model_dir = tmp_path / "m"
  ckpts = model_dir / schema.CHECKPOINT_SUBDIR
  train.run(_config(lang_records, model_dir, tiny_config, max_steps=20))
  ckpt10, ckpt20 = str(ckpts / "ckpt-10"), str(ckpts / "ckpt-20")
  kept = _sha(ckpt10 + ".index")

  # 1. The `checkpoint` state file is gone, and ckpt-20's data is cut in half (a copy that
  #    stopped); a save killed midway left a 'ckpt-30_temp' directory.
  os.remove(ckpts / "checkpoint")
  data20 = _data_file(ckpt20)
  with open(data20, "r+b") as f:
    f.truncate(os.path.getsize(data20) // 2)
  temp = ckpts / "ckpt-30_temp"
  temp.mkdir()
  (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 4096)

  caplog.set_level(logging.INFO, logger="bertline.train")
  result = train.run(_config(lang_records, model_dir, tiny_config, max_steps=30))
  messages = [r.getMessage() for r in caplog.records]
  assert any("Resumed from " + ckpt10 + " at step 10" in m for m in messages)
  assert any("newer checkpoint(s) are damaged: " + ckpt20 in m for m in messages)
  assert result.final_step == 30
  assert not temp.exists()  # the killed save's leftovers are gone
  assert _sha(ckpt10 + ".index") == kept  # never restarted and overwritten from step 0


def test_every_checkpoint_damaged_is_refused_naming_them(lang_records, tiny_config, tmp_path):
  model_dir = tmp_path / "m"
  train.run(_config(lang_records, model_dir, tiny_config, max_steps=10))
  prefix = str(model_dir / schema.CHECKPOINT_SUBDIR / "ckpt-10")
  with open(_data_file(prefix), "r+b") as f:
    f.truncate(100)
  with pytest.raises(ValueError, match=r"every checkpoint in .* is damaged: .*ckpt-10 "):
    train.run(_config(lang_records, model_dir, tiny_config, max_steps=20))


def test_evaluate_uses_the_latest_when_best_is_damaged_and_names_a_damaged_checkpoint(
    tweets_data, tmp_path):
  from tests.conftest import make_model_dir
  import tensorflow as tf
  model_dir = tmp_path / "m"
  model = make_model_dir(str(model_dir), tweets_data["data"])
  best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                    str(model_dir / schema.BEST_SUBDIR), 1).save(1)
  with open(_data_file(best), "r+b") as f:
    f.truncate(64)
  result = bertline("evaluate", "--model-dir", str(model_dir), "--data-dir", tweets_data["data"])
  assert result.returncode == 0, result.stderr
  assert f"The best checkpoint {best} is damaged" in result.stderr and "using the latest" in result.stderr
  latest = str(model_dir / schema.CHECKPOINT_SUBDIR / "ckpt-1")
  with open(_data_file(latest), "r+b") as f:
    f.truncate(64)
  result = bertline("evaluate", "--model-dir", str(model_dir), "--data-dir", tweets_data["data"])
  assert result.returncode == errors.BAD_INPUT
  assert f"checkpoint {latest} is damaged" in last_line(result) and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_corrupted_shard_is_named_by_evaluate_and_predict(tweets_data, exported, tmp_path,
                                                            command):
  import shutil
  data = tmp_path / "data"
  shutil.copytree(tweets_data["data"], data)
  metadata = schema.read_metadata(str(data))
  split = "dev" if command == "evaluate" else "test"
  victim = metadata.split_files(str(data), split)[1]
  with open(victim, "r+b") as f:  # flip bytes in the middle of a record
    f.seek(200)
    f.write(b"\xff" * 16)
  args = (["--model-dir", exported["path"]] if command == "evaluate" else
          ["--model", exported["path"], "--output", str(tmp_path / "p.tsv")])
  result = bertline(command, *args, "--data-dir", str(data), "--split", split)
  assert result.returncode == errors.BAD_INPUT, result.stderr
  line = last_line(result)
  assert "corrupted or truncated TFRecord shard" in line and os.path.basename(victim) in line
  assert "Traceback" not in result.stderr


def test_a_second_trainer_of_a_model_dir_is_refused_and_the_first_loses_nothing(
    lang_records, tiny_config, tmp_path):
  model_dir = tmp_path / "m"
  first = subprocess.Popen(
      [sys.executable, "-m", "bertline", "train", "--data-dir", lang_records, "--model-dir",
       str(model_dir), "--model-config-file", tiny_config, "--vocab-file", helpers.VOCAB,
       "--batch-size", "16", "--epochs", "50", "--learning-rate", "1e-3", "--seed", "3",
       "--checkpoint-every-steps", "5", "--no-progress"], env=dict(os.environ, NO_GCE_CHECK="True"), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 120  # until the first writes its model_dir: it holds the claim
    while not (model_dir / schema.TRAIN_CONFIG_FILE).exists() and time.time() < deadline:
      assert first.poll() is None, first.stderr.read()
      time.sleep(0.1)
    before = (model_dir / schema.TRAIN_CONFIG_FILE).read_bytes()
    with pytest.raises(FileExistsError, match=rf"another `bertline train` is training in "
                       rf"--model-dir {model_dir}; wait for it, or give another --model-dir "
                       rf"\(pid {first.pid} on "):
      train.run(_config(lang_records, model_dir, tiny_config, max_steps=2, epochs=1))
    assert (model_dir / schema.TRAIN_CONFIG_FILE).read_bytes() == before  # the first's, intact
    assert first.poll() is None  # and it trains on
    while not (model_dir / schema.CHECKPOINT_SUBDIR / "checkpoint").exists():
      assert first.poll() is None and time.time() < deadline, first.stderr.read()
      time.sleep(0.1)
  finally:
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)
  assert first.returncode == errors.INTERRUPTED
  # The claim died with its owner: the same command resumes.
  result = train.run(_config(lang_records, model_dir, tiny_config, epochs=50, max_steps=30,
                             eval_every_steps=0, checkpoint_every_steps=5))
  assert result.final_step == 30


def test_sigterm_while_train_loads_is_exit_143_with_a_line(lang_records, tiny_config, tmp_path):
  model_dir = tmp_path / "m"
  proc = subprocess.Popen(
      [sys.executable, "-m", "bertline", "train", "--data-dir", lang_records, "--model-dir",
       str(model_dir), "--model-config-file", tiny_config, "--vocab-file", helpers.VOCAB,
       "--epochs", "1", "--no-progress"], env=dict(os.environ, NO_GCE_CHECK="True"),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(2.0)  # the interpreter is up and importing TensorFlow: no loop, no checkpoint yet
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == errors.INTERRUPTED, err[-3000:]
  assert err.strip().splitlines()[-1] == (
      "bertline train: interrupted by SIGTERM: before its training loop began (no step was "
      "lost); re-run the same command.")
  assert "Traceback" not in err
