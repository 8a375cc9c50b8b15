"""ModelConfig reads Google's, ALBERT's and Hugging Face's configs and rejects what it cannot build."""

import json

import pytest

from bertline import resources
from bertline.model.model_config import ModelConfig

# Google's chinese_L-12_H-768_A-12/bert_config.json, as released (extra pooler keys included).
GOOGLE_CHINESE = {
    "attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 512, "num_attention_heads": 12,
    "num_hidden_layers": 12, "pooler_fc_size": 768, "pooler_num_attention_heads": 12,
    "pooler_num_fc_layers": 3, "pooler_size_per_head": 128, "pooler_type": "first_token_transform",
    "type_vocab_size": 2, "vocab_size": 21128,
}
# google-research/albert's albert_base config.
ALBERT_BASE = {
    "attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
    "embedding_size": 128, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 512, "num_attention_heads": 12,
    "num_hidden_layers": 12, "num_hidden_groups": 1, "net_structure_type": 0, "gap_size": 0,
    "num_memory_blocks": 0, "inner_group_num": 1, "down_scale_factor": 1, "type_vocab_size": 2,
    "vocab_size": 30000,
}


def _write(tmp_path, d, name="config.json"):
  path = tmp_path / name
  path.write_text(json.dumps(d))
  return str(path)


def test_google_chinese_config_with_extra_keys(tmp_path):
  c = ModelConfig.from_json_file(_write(tmp_path, GOOGLE_CHINESE, "bert_config.json"))
  assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.model_type) == (21128, 768, 12, "bert")
  assert c.embedding_size is None and not c.has_embedding_projection
  assert c.layer_norm_eps == 1e-12


def test_albert_config_is_recognised_by_its_keys(tmp_path):
  c = ModelConfig.from_json_file(_write(tmp_path, ALBERT_BASE, "albert_config.json"))
  assert c.model_type == "albert" and c.embedding_size == 128 and c.has_embedding_projection
  assert c.attention_probs_dropout_prob == 0.0 and isinstance(c.hidden_dropout_prob, float)
  assert [c.group_of_layer(i) for i in range(12)] == [0] * 12


def test_hugging_face_minilm_config():
  c = ModelConfig.from_json_file(resources.minilm_dir() + "/config.json")
  raw = json.load(open(resources.minilm_dir() + "/config.json"))
  assert c.hidden_size == raw["hidden_size"] == 384
  assert c.num_hidden_layers == raw["num_hidden_layers"]
  assert c.layer_norm_eps == raw["layer_norm_eps"]
  assert c.vocab_size == raw["vocab_size"]


def test_round_trip(tmp_path):
  c = ModelConfig.from_dict(ALBERT_BASE)
  path = str(tmp_path / "model_config.json")
  c.write(path)
  assert ModelConfig.from_json_file(path) == c


@pytest.mark.parametrize("change, message", [
    ({"hidden_act": "gelu_erf"}, "unknown hidden_act 'gelu_erf'"),
    ({"num_attention_heads": 7}, "not a multiple of num_attention_heads 7"),
    ({"hidden_size": "768"}, "hidden_size must be a positive integer"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be in [0, 1)"),
    ({"num_hidden_layer": 3}, "unknown key(s) ['num_hidden_layer']"),
    ({"embedding_size": 128, "model_type": "bert"}, "set model_type 'albert'"),
    ({"model_type": "roberta"}, "model_type 'roberta' is not supported"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key' "
                                                  "describes a network"),
    ({"ln_type": "preln"}, "ln_type 'preln'"),
])
def test_bad_values_name_the_key(tmp_path, change, message):
  path = _write(tmp_path, {**GOOGLE_CHINESE, **change})
  with pytest.raises(ValueError) as e:
    ModelConfig.from_json_file(path)
  assert message in str(e.value) and path in str(e.value)


def test_missing_and_invalid_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    ModelConfig.from_json_file(str(tmp_path / "nope.json"))
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    ModelConfig.from_json_file(str(bad))
  with pytest.raises(ValueError, match="missing key 'vocab_size'"):
    ModelConfig.from_dict({"hidden_size": 8})
