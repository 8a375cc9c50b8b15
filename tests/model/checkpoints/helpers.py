"""Small builders shared by the checkpoint-format tests: tiny configs and inputs."""

import json
import os

import numpy as np

MAX_SEQ_LENGTH = 48


def albert_config(directory, **extra):
  config = dict(vocab_size=30, embedding_size=8, hidden_size=16, num_hidden_layers=4,
                num_attention_heads=4, intermediate_size=24, max_position_embeddings=12,
                type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0,
                attention_probs_dropout_prob=0, initializer_range=0.02, **extra)
  with open(os.path.join(directory, "albert_config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(directory, "vocab.txt"), "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(26)]) + "\n")
  return config


def tiny_inputs():
  rng = np.random.default_rng(1)
  ids = rng.integers(1, 30, (3, 10)).astype(np.int32)
  mask = (np.arange(10)[None] < np.array([[10], [6], [3]])).astype(np.int32)
  segments = (np.arange(10)[None] >= 4).astype(np.int32) * mask
  return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


def torch_inputs(torch, inputs):
  return dict(input_ids=torch.tensor(inputs["input_ids"], dtype=torch.long),
              attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
              token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long))
