"""Headless Debian Chromium driven over the DevTools protocol (a websocket on 127.0.0.1), for the
HTML report tests: what a page printed to the console, every request it attempted, whether its
images decode, what the DOM holds, and a full-page screenshot."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*"]


@dataclass
class Page:
    url: str
    console_errors: list[str] = field(default_factory=list)   # console.error, uncaught exceptions, Log errors
    log: list[str] = field(default_factory=list)              # every console/Log entry, for messages
    requests: list[str] = field(default_factory=list)         # every URL the page asked for (sent or blocked)
    request_ids: dict[str, str] = field(default_factory=dict)  # DevTools request id -> URL
    failed: dict[str, str] = field(default_factory=dict)      # request id -> why it failed ('csp': blocked)
    images: list[dict] = field(default_factory=list)          # per <img>: src head, decoded, width
    value: object = None                                      # what the probe expression returned
    screenshot: Path | None = None

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the file itself and data: URIs."""
        return [u for u in self.requests if not (u.startswith("file://") or u.startswith("data:"))]


class Chromium:
    def __init__(self, workdir: Path | None = None, timeout: float = 60):
        from websockets.sync.client import connect
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed")
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self._connection = connect(f"ws://127.0.0.1:{port}{path}", max_size=256 * 2**20, open_timeout=timeout)
        self.ws = self._connection.__enter__()
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                reply = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return
            if "method" in reply:
                self.events.append(reply)

    def _wait_for(self, session: str, method: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not any(e.get("sessionId") == session and e["method"] == method for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(f"no {method} within {timeout} s")
            self._pump(0.2)

    def open(self, path: Path, screenshot: Path | None = None, probe: str | None = None, width: int = 1280,
             settle: float = 1.0) -> Page:
        """Load a file, let it settle, check its images and (optionally) take a full-page screenshot."""
        url = path.resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=session)
            self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                             "mobile": False}, session=session)
            self.events = [e for e in self.events if e.get("sessionId") != session]
            self.call("Page.navigate", {"url": url}, session=session)
            self._wait_for(session, "Page.loadEventFired", 60)
            self._pump(settle)
            page = Page(url=url)
            images = self.call("Runtime.evaluate", {"expression": IMAGES, "awaitPromise": True,
                                                    "returnByValue": True}, session=session)
            page.images = images["result"].get("value") or []
            if probe:
                page.value = self.call("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                                       session=session)["result"].get("value")
            if screenshot is not None:
                size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
                height = min(int(size["height"]) + 1, 12000)
                self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                 "deviceScaleFactor": 1, "mobile": False},
                          session=session)
                shot = self.call("Page.captureScreenshot", {"format": "png"}, session=session)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                page.screenshot = screenshot
            self._pump(0.2)
            self._collect(page, session)
            return page
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def _collect(self, page: Page, session: str) -> None:
        for event in (e for e in self.events if e.get("sessionId") == session):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                page.log.append(f"console.{params.get('type')}: {text}")
                if params.get("type") in ("error", "assert"):
                    page.console_errors.append(text)
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text", "")
                page.log.append(f"exception: {text}")
                page.console_errors.append(text)
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                page.log.append(f"log.{entry.get('level')}: {entry.get('text')}")
                if entry.get("level") == "error":
                    page.console_errors.append(entry.get("text", ""))
            elif method == "Network.requestWillBeSent":
                page.requests.append(params.get("request", {}).get("url", ""))
                page.request_ids[params.get("requestId", "")] = page.requests[-1]
            elif method == "Network.loadingFailed":
                page.failed[params.get("requestId", "")] = params.get("blockedReason") or params.get("errorText", "")

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self.call("Browser.close", timeout=10)
                except Exception:
                    pass
                self._connection.__exit__(None, None, None)
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


IMAGES = """(async () => {
  const out = [];
  for (const img of Array.from(document.images)) {
    let decoded = true;
    try { await img.decode(); } catch (e) { decoded = false; }
    out.push({src: (img.getAttribute("src") || "").slice(0, 60), decoded: decoded,
              width: img.naturalWidth, height: img.naturalHeight});
  }
  return out;
})()"""
