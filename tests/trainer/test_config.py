"""trainer/config.py: TrainConfig from YAML and flags, and its checks."""

from __future__ import annotations

import pytest

from bertline.trainer import train


def test_cli_flags_override_the_yaml(tmp_path):
  path = tmp_path / "train.yaml"
  path.write_text("data_dir: d\nmodel_dir: m\nlearning_rate: 2.0e-5\nbatch_size: 8\n"
                  "bucket_boundaries: [16]\n")
  config = train.config_from_args(["--config", str(path), "--batch-size", "64", "--xla",
                                   "--bucket-boundaries", "32,64"])
  assert (config.learning_rate, config.batch_size, config.xla) == (2e-5, 64, True)
  assert config.bucket_boundaries == [32, 64] and config.epochs == 3.0  # run_classifier's
  path.write_text("learning_rat: 1\n")
  with pytest.raises(ValueError, match="unknown key 'learning_rat'"):
    train.config_from_args(["--config", str(path)])
  with pytest.raises(ValueError, match="--batch-size 10 is not a multiple of --grad-accum-steps 4"):
    train.config_from_args(["--batch-size", "10", "--grad-accum-steps", "4"])
