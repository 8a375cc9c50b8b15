"""model/checkpoints/__init__.py: resolving a path to a checkpoint format, and the errors for
what is not one (no checkpoint, no config, shapes that do not match)."""

import os

import numpy as np
import pytest

from bertline import resources, schema
from bertline.model import checkpoints, modeling
from bertline.model.model_config import ModelConfig
from tests.trainer import fixtures


# --- bad input ------------------------------------------------------------------------
def test_directory_without_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match="No recognised checkpoint in .*bert_model.ckpt"):
    checkpoints.resolve_pretrained(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="No pretrained model at"):
    checkpoints.resolve_pretrained(str(tmp_path / "missing"))
  (tmp_path / schema.MODEL_CONFIG_FILE).write_text("{}")
  with pytest.raises(FileNotFoundError, match="without a checkpoint"):
    checkpoints.resolve_pretrained(str(tmp_path))


def test_shape_and_config_mismatch_errors_name_the_variable(tmp_path):
  small = ModelConfig(vocab_size=100, hidden_size=384, num_hidden_layers=6,
                      num_attention_heads=12, intermediate_size=1536)
  with pytest.raises(ValueError, match="vocab_size: checkpoint 30522 vs model 100"):
    checkpoints.load_pretrained(modeling.BertEncoder(small), resources.minilm_dir())
  with pytest.raises(ValueError, match=r"embeddings.word_embeddings.weight: checkpoint shape "
                                       r"\[30522, 384\] != model shape \[100, 384\] \(vocab_size"):
    checkpoints.load_pretrained(modeling.BertEncoder(small), resources.minilm_dir(),
                                check_config=False)


def test_checkpoint_without_config(tmp_path):
  fixtures.write_tf1_checkpoint({"bert/embeddings/word_embeddings": np.zeros([4, 2], np.float32)},
                                str(tmp_path / "bert_model.ckpt"))
  with pytest.raises(FileNotFoundError, match="No config beside checkpoint .*bert_config.json"):
    checkpoints.resolve_pretrained(str(tmp_path))
  other = tmp_path / "other"
  fixtures.write_tf1_checkpoint({"dense/kernel": np.zeros([4, 2], np.float32)},
                                str(other / "model.ckpt"))
  with pytest.raises(ValueError, match="not a BERT/ALBERT checkpoint"):
    checkpoints.resolve_pretrained(str(other))


def test_builtin_minilm_names_the_packaged_model_wherever_a_checkpoint_is_taken():
  files = checkpoints.resolve_pretrained(resources.MINILM)
  assert files.model_config() == checkpoints.resolve_pretrained(
      resources.minilm_dir()).model_config()
  assert files.vocab_file == os.path.join(resources.minilm_dir(), "vocab.txt")
