"""The local Beam runner downloads nothing and listens on loopback only."""

import os

from bertline import resources
from tests.reliability.conftest import bertline

VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")


def _listening(port: int):
  """Local addresses (hex, as /proc/net shows them) of LISTEN sockets on `port`."""
  found = []
  for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table) as f:
      for row in f.read().splitlines()[1:]:
        fields = row.split()
        address, hex_port = fields[1].rsplit(":", 1)
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
          found.append(address)
  return found


# 127.0.0.1, ::1 and ::ffff:127.0.0.1 (IPv4-mapped, in tcp6), as /proc/net writes them.
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_beams_grpc_servers_bind_to_loopback_only_while_bertline_runs_them():
  from concurrent import futures

  from apache_beam.runners.portability.fn_api_runner import worker_handlers

  from bertline import beam_runner

  def bound(grpc_module):
    server = grpc_module.server(futures.ThreadPoolExecutor(1))
    port = server.add_insecure_port("[::]:0")  # what Beam's worker handlers ask for
    server.start()
    try:
      return set(_listening(port))
    finally:
      server.stop(None)

  assert not bound(worker_handlers.grpc) <= LOOPBACK  # Beam's own: every interface
  with beam_runner.loopback_servers():
    addresses = bound(worker_handlers.grpc)
  assert addresses and addresses <= LOOPBACK


def test_a_local_preprocess_never_starts_prism_nor_downloads_it(tmp_path):
  data = tmp_path / "d"
  data.mkdir()
  (data / "task.yaml").write_text("name: t\nlabels: [neg, pos]\nsplits:\n"
                                  "  train: {file: train.tsv, text_a: 1, label: 0}\n")
  (data / "train.tsv").write_text("".join(f"{('pos', 'neg')[i % 2]}\tgood {i}\n" for i in range(50)))
  home = tmp_path / "home"
  home.mkdir()
  result = bertline("--verbose", "preprocess", "--task-config", str(data / "task.yaml"),
                    "--data-dir", str(data), "--vocab-file", VOCAB, "--max-seq-length", "16",
                    "--output-dir", str(tmp_path / "out"), "--splits", "train",
                    # Two shards: two worker threads, talking to the runner over gRPC (one
                    # shard would run in Beam's in-memory mode, with no server to check).
                    "--num-shards", "2", env={"HOME": str(home)})
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Prism" not in result.stderr and "prism" not in result.stderr
  assert not (home / ".apache_beam").exists()  # where Beam caches the Prism binary it downloads
  assert "Beam gRPC server listening on localhost:0" in result.stderr
