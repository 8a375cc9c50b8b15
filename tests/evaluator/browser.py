"""A real headless browser for the tests: Debian's chromium, driven over the DevTools protocol.

Chromium's `--remote-debugging-pipe` speaks the protocol on file descriptors
3 (commands in) and 4 (replies and events out), each message JSON ended by a
NUL byte: no port, no websocket library, nothing on the network. A page is
opened from a file; what the tests ask of it — the console errors and
exceptions it raised, failed loads, values read from its DOM, a screenshot —
comes back from the browser itself.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
from typing import Any, Dict, List, Optional

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find() -> Optional[str]:
  return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _above_four(fd: int) -> int:
  high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
  os.close(fd)
  return high


class Page:
  """One tab of a headless chromium showing `url`; use as a context manager."""

  def __init__(self, url: str, width: int = 1200, height: int = 1800):
    binary = find()
    if not binary:
      message = "no chromium to run the page in: apt-get install chromium (.ci/run does)"
      if os.environ.get("CI"):
        pytest.fail(message)
      pytest.skip(message)
    commands_r, self._commands = os.pipe()
    self._replies, replies_w = os.pipe()
    # Above 4, so that placing one end on fd 3 cannot close the other before it is placed.
    commands_r, replies_w = (_above_four(fd) for fd in (commands_r, replies_w))
    # The browser reads fd 3 and writes fd 4: give it our pipe ends under those numbers.
    self._proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
         "--no-first-run", f"--window-size={width},{height}", "about:blank"],
        pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: (os.dup2(commands_r, 3), os.dup2(replies_w, 4)))
    os.close(commands_r)
    os.close(replies_w)
    self._buffer = b""
    self._next_id = 0
    self.events: List[Dict[str, Any]] = []
    target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
    self._session = self._call("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
      self.call(f"{domain}.enable")
    self.call("Page.navigate", {"url": url})
    self._wait_for("Page.loadEventFired")

  def __enter__(self) -> "Page":
    return self

  def __exit__(self, *exc) -> None:
    self._proc.kill()
    self._proc.wait(timeout=30)
    os.close(self._commands)
    os.close(self._replies)

  def _read(self) -> Dict[str, Any]:
    while b"\0" not in self._buffer:
      chunk = os.read(self._replies, 1 << 16)
      if not chunk:
        raise RuntimeError("chromium closed its DevTools pipe")
      self._buffer += chunk
    message, self._buffer = self._buffer.split(b"\0", 1)
    return json.loads(message)

  def _call(self, method: str, params: Optional[dict] = None,
            session: Optional[str] = None) -> Dict[str, Any]:
    self._next_id += 1
    message = {"id": self._next_id, "method": method, "params": params or {}}
    if session:
      message["sessionId"] = session
    os.write(self._commands, json.dumps(message).encode() + b"\0")
    while True:
      reply = self._read()
      if reply.get("id") == self._next_id:
        if "error" in reply:
          raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]
      self.events.append(reply)

  def call(self, method: str, params: Optional[dict] = None) -> Dict[str, Any]:
    return self._call(method, params, self._session)

  def _wait_for(self, event: str) -> None:
    while not any(e.get("method") == event for e in self.events):
      self.events.append(self._read())

  def errors(self) -> List[str]:
    """Console errors, uncaught exceptions and failed loads, as the browser reported them."""
    found = []
    for e in self.events:
      method, params = e.get("method"), e.get("params", {})
      if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        found.append("console: " + " ".join(str(a.get("value")) for a in params["args"]))
      elif method == "Runtime.exceptionThrown":
        found.append("exception: " + params["exceptionDetails"]["text"])
      elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        found.append("log: " + params["entry"]["text"])
      elif method == "Network.loadingFailed":
        found.append("load failed: " + params.get("errorText", ""))
      elif method == "Network.requestWillBeSent" and not params["request"]["url"].startswith(
          ("file:", "data:", "about:")):
        found.append("network request: " + params["request"]["url"])
    return found

  def evaluate(self, expression: str) -> Any:
    result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
    if "exceptionDetails" in result:
      raise RuntimeError(result["exceptionDetails"]["text"])
    return result["result"].get("value")

  def screenshot(self) -> bytes:
    """The whole page as PNG bytes."""
    return base64.b64decode(self.call("Page.captureScreenshot",
                                      {"format": "png", "captureBeyondViewport": True})["data"])
