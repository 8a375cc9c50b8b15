"""A fake Kubeflow Pipelines server on loopback for the submit and schedule tests."""

import http.server
import json
import threading

import pytest


class _FakeKfp(http.server.BaseHTTPRequestHandler):
  """Just enough of the Kubeflow Pipelines v2beta1 REST API; records every request."""

  requests = []

  def _answer(self):
    length = int(self.headers.get("Content-Length") or 0)
    body = self.rfile.read(length)
    self.requests.append((self.command, self.path.split("?")[0], json.loads(body) if body else None))
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.end_headers()
    self.wfile.write(json.dumps({"experiment_id": "exp-1", "run_id": "run-1",
                                 "recurring_run_id": "rec-1", "experiments": []}).encode())

  do_GET = do_POST = _answer

  def log_message(self, *args):
    pass


@pytest.fixture
def kfp_server():
  _FakeKfp.requests = []
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfp)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_port}", _FakeKfp.requests
  server.shutdown()
  server.server_close()
