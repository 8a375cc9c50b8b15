"""Reading a preprocess output back for tests: every example of a split by guid."""

from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

from bertline import schema


def read_split(data_dir: str, split: str) -> Dict[str, Tuple[bytes, Dict[str, np.ndarray]]]:
  """{guid: (serialized tf.Example, parsed features as numpy)} of every example of `split`.

  Reads exactly the shards metadata.json lists, with its compression; a guid
  written twice fails the test.
  """
  metadata = schema.read_metadata(data_dir)
  spec = metadata.feature_spec()
  ds = tf.data.TFRecordDataset(metadata.split_files(data_dir, split),
                               compression_type=schema.TF_COMPRESSION_TYPE[metadata.compression])
  out = {}
  for raw in ds:
    example = {k: v.numpy() for k, v in tf.io.parse_single_example(raw, spec).items()}
    guid = example[schema.GUID][0].decode()
    assert guid not in out, f"guid {guid} written twice"
    out[guid] = (raw.numpy(), example)
  return out
