"""Serialized tf.train.Example records for a whole batch at once.

Building a `tf.train.Example` message per example and calling
SerializeToString() costs tens of microseconds in Python — as much as
tokenizing the text in graph. Every record the preprocess job writes has the
same shape (three int64 sequences, two int64 scalars, one bytes guid), so the
protobuf wire format is written directly here: the varints of a whole batch
are encoded with numpy, and each record is a handful of byte concatenations.

The bytes parse to exactly the message tf.train.Example would build
(tests/preprocessing/test_tfexample.py checks it against the protobuf library).

Wire format, for reference (field number << 3 | wire type 2 = length-delimited):
  Example    { Features features = 1; }
  Features   { map<string, Feature> feature = 1; }   -- entries {key = 1; value = 2}
  Feature    { BytesList bytes_list = 1; Int64List int64_list = 3; }
  Int64List  { repeated int64 value = 1 [packed]; }
  BytesList  { repeated bytes value = 1; }
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

_FIELD1 = b"\x0a"  # field 1, length-delimited
_FIELD2 = b"\x12"  # field 2, length-delimited
_FIELD3 = b"\x1a"  # field 3, length-delimited
_MAX_VARINT_BYTES = 10


def _varint(n: int) -> bytes:
  out = bytearray()
  while n >= 0x80:
    out.append((n & 0x7F) | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


# Varints of every length a record part can have in practice; longer ones are
# computed (a 16 KiB feature is far beyond any max_seq_length).
_SMALL_VARINTS = [_varint(i) for i in range(1 << 14)]


def _len_varint(n: int) -> bytes:
  return _SMALL_VARINTS[n] if n < (1 << 14) else _varint(n)


def _packed_rows(values: np.ndarray) -> List[bytes]:
  """Varint-encodes each row of a non-negative int matrix: packed Int64List payloads.

  Args:
    values: int [batch, n], every value >= 0.
  Returns:
    batch byte strings, row i holding the varints of values[i] back to back.
  """
  values = np.asarray(values)
  if values.ndim != 2:
    raise ValueError(f"expected a [batch, n] matrix, got shape {values.shape}")
  if values.size and values.min() < 0:
    raise ValueError("feature values must be non-negative (ids, masks, labels)")
  values = values.astype(np.uint64)
  top = int(values.max()) if values.size else 0
  width = max(1, (top.bit_length() + 6) // 7)  # bytes of the longest varint
  shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
  groups = ((values[..., None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)  # [b, n, w]
  # A varint has one byte per 7-bit group up to its highest non-zero group.
  num_bytes = np.ones(values.shape, np.int64)
  for k in range(1, width):
    num_bytes += values >= (1 << (7 * k))
  position = np.arange(width)
  groups |= np.where(position < (num_bytes[..., None] - 1), 0x80, 0).astype(np.uint8)
  data = groups[position < num_bytes[..., None]].tobytes()  # row-major: rows stay in order
  ends = np.cumsum(num_bytes.sum(axis=1)).tolist()
  return [data[s:e] for s, e in zip([0] + ends[:-1], ends)]


def _entry_prefix(name: str) -> bytes:
  key = name.encode("utf-8")
  return _FIELD1 + _len_varint(len(key)) + key


def _map_entry(key_prefix: bytes, feature_tag: bytes, list_payload: bytes) -> bytes:
  """One `feature` map entry {key, Feature{<tag>: List{payload}}}, length-prefixed."""
  # Int64List{packed values} and BytesList{one value} both hold one field-1 payload.
  inner = _FIELD1 + _len_varint(len(list_payload)) + list_payload
  feature = feature_tag + _len_varint(len(inner)) + inner
  entry = key_prefix + _FIELD2 + _len_varint(len(feature)) + feature
  return _FIELD1 + _len_varint(len(entry)) + entry


def serialize_batch(int_features: Dict[str, np.ndarray], bytes_features: Dict[str, Sequence[bytes]]
                    ) -> List[bytes]:
  """Serialized tf.train.Example of each example of a batch.

  Args:
    int_features: name -> int [batch, n] (n may be 1), non-negative.
    bytes_features: name -> batch byte strings (one value per example).
  Returns:
    batch serialized tf.train.Example byte strings.
  """
  columns = []
  for name in sorted(int_features):
    prefix = _entry_prefix(name)
    columns.append([_map_entry(prefix, _FIELD3, r) for r in _packed_rows(int_features[name])])
  for name in sorted(bytes_features):
    prefix = _entry_prefix(name)
    columns.append([_map_entry(prefix, _FIELD1, v)
                    for v in bytes_features[name]])
  if any(len(c) != len(columns[0]) for c in columns):
    raise ValueError("every feature needs one row per example")
  out = []
  for entries in zip(*columns):
    features = b"".join(entries)
    out.append(_FIELD1 + _len_varint(len(features)) + features)
  return out
