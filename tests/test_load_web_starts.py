"""The first minute of the web UI, in a real headless Chromium: the form
filled from the command line, Start answered at once (the form closed,
RUNNING shown, never READY again), the form's own errors beside their
fields, and views that come out of order (src/twincorn/load/web_control.py
on why they do)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from load_web_support import ConsoleWatch, RunningUI, chromium
from test_load_web import hello
from twincorn.load.plan import LoadPlan
from twincorn.load.web_form import HINTS, NO_HOST

STARTS = 20
WITHIN_MS = 200.0

# Watches the page from a click on Start: when the form is first closed with
# RUNNING shown (`reached`, by performance.now(), from the click's own
# event), and any moment after it when that no longer holds (`broken`),
# until disarmed. A MutationObserver sees every change of the DOM as it is
# made, so the time is the page's, with no polling.
PROBE = """() => {
  const panel = document.getElementById("start-panel");
  const status = document.getElementById("status");
  const probe = { armed: false, clicked: null, reached: null, broken: [] };
  const started = () => panel.hidden && status.textContent === "RUNNING";
  const check = () => {
    if (!probe.armed || probe.clicked === null) return;
    if (probe.reached === null) {
      if (started()) probe.reached = performance.now();
    } else if (!started()) {
      probe.broken.push((panel.hidden ? "form closed, " : "form open, ") + status.textContent);
    }
  };
  new MutationObserver(check).observe(document.body,
    { subtree: true, childList: true, attributes: true, characterData: true });
  document.getElementById("start-button").addEventListener("click", () => {
    if (probe.armed) probe.clicked = performance.now();
  }, { capture: true });
  probe.arm = () => Object.assign(probe, { armed: true, clicked: null, reached: null,
                                           broken: [] });
  window.startProbe = probe;
}"""

SHOWN = "#start-panel:not([hidden])"


def status_is(page: Any, text: str) -> None:
    page.wait_for_function("t => document.getElementById('status').textContent === t", arg=text)


@contextmanager
def web_command(*args: str) -> Iterator[str]:
    """`twincorn load ... --web --web-port 0` as a process; its UI's URL."""
    command = [sys.executable, "-m", "twincorn", "load", *args, "--web", "--web-port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+", line)
            assert url is not None, f"no URL in {line!r}"
            yield url.group(0)
            child.send_signal(signal.SIGINT)
            assert child.wait(15) == 0
        finally:
            child.kill()


def test_twenty_starts_from_the_command_line(serve: Callable[..., Any]) -> None:
    """`twincorn load -H URL --web -u 3 -r 0 -t 30s`: the form shows them,
    and each of 20 starts closes it and shows RUNNING within 200 ms of the
    click, for good (until the reply of the POST has been dealt with)."""
    target = serve(hello, lifespan="off")
    with web_command("-H", target.url, "-u", "3", "-r", "0", "-t", "30s") as url, \
            chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console = ConsoleWatch(page)
        page.set_default_timeout(10_000)
        page.goto(url)
        page.wait_for_selector(SHOWN)
        assert page.input_value("#host-input") == target.url
        assert page.input_value("#users-input") == "3"
        assert page.input_value("#spawn-rate-input") == "0"
        assert page.input_value("#run-time-input") == "30s"
        assert page.inner_text("#host") == target.url
        page.evaluate(PROBE)

        took: list[float] = []
        for n in range(STARTS):
            page.evaluate("startProbe.arm()")
            page.click("#start-button")
            page.wait_for_function("startProbe.reached !== null", timeout=5_000)
            # The POST's reply has been dealt with once Start is enabled again.
            page.wait_for_function("!document.getElementById('start-button').disabled")
            probe = page.evaluate("({clicked: startProbe.clicked, reached: startProbe.reached, "
                                  "broken: startProbe.broken})")
            took.append(probe["reached"] - probe["clicked"])
            assert probe["broken"] == [], f"start {n + 1}: {probe['broken']}"
            page.evaluate("startProbe.armed = false")
            if n == 0:  # the first second's tick: the numbers of the run
                page.wait_for_function("document.getElementById('users').textContent === '3'")
            page.click("#stop-button")
            status_is(page, "STOPPED")
            # A new run: New (the form with the last values) or Reset (the
            # results forgotten, the form again), in turn.
            page.click("#new-button" if n % 2 == 0 else "#reset-button")
            page.wait_for_selector(SHOWN)
            assert page.input_value("#host-input") == target.url
        assert max(took) < WITHIN_MS, f"ms from Start to RUNNING: {[round(t) for t in took]}"
        assert console.errors == []


def test_form_errors_beside_their_fields_and_stale_views(serve: Callable[..., Any]) -> None:
    """No URL and no -H: Start with the host empty says what to enter,
    beside the host field, and starts nothing; a bad number of users too.
    Then, running, a "ready" view from before the start (what the stream
    or a slow reply may bring late) is dropped; one of a restarted server
    (another epoch) is shown."""
    target = serve(hello, lifespan="off")
    with chromium() as browser, RunningUI(LoadPlan(users=2)) as ui:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console = ConsoleWatch(page)
        page.set_default_timeout(10_000)
        page.goto(ui.url)
        page.wait_for_selector(SHOWN)
        assert page.input_value("#host-input") == ""

        page.click("#start-button")
        page.wait_for_selector("#host-error:not([hidden])")
        assert page.inner_text("#host-error") == NO_HOST
        assert page.get_attribute("#host-input", "aria-invalid") == "true"
        assert page.evaluate("document.activeElement.id") == "host-input"
        assert page.is_hidden("#form-error") and page.is_hidden("#users-error")
        assert page.inner_text("#status") == "READY" and ui.ui.control.run is None
        page.fill("#host-input", target.url)  # typing clears the field's error
        assert page.is_hidden("#host-error")

        page.fill("#users-input", "0")
        page.click("#start-button")
        page.wait_for_selector("#users-error:not([hidden])")
        assert page.inner_text("#users-error") == HINTS["users"]
        assert page.is_hidden("#host-error")

        stale = httpx.get(f"{ui.url}/api/state", timeout=5).json()
        assert stale["state"] == "ready"
        page.fill("#users-input", "2")
        page.click("#start-button")
        status_is(page, "RUNNING")
        assert page.is_hidden("#start-panel") and page.is_hidden("#users-error")
        assert page.evaluate("v => twincornWeb.receive('snapshot', v)", stale) is False
        assert page.evaluate("v => twincornWeb.receive('tick', v)", stale) is False
        assert page.is_hidden("#start-panel") and page.inner_text("#status") == "RUNNING"

        # The order rule itself: same epoch, no smaller seq; any other epoch.
        order = page.evaluate("""() => {
          const a = { epoch: "e1", seq: 5 };
          return [TwincornOrder.newer(null, a),
                  TwincornOrder.newer(a, { epoch: "e1", seq: 4 }),
                  TwincornOrder.newer(a, { epoch: "e1", seq: 5 }),
                  TwincornOrder.newer(a, { epoch: "e1", seq: 6 }),
                  TwincornOrder.newer(a, { epoch: "e2", seq: 0 })];
        }""")
        assert order == [True, False, True, True, True]

        restarted = {**stale, "epoch": "another process"}
        assert page.evaluate("v => twincornWeb.receive('snapshot', v)", restarted) is True
        page.wait_for_selector(SHOWN)
        assert page.inner_text("#status") == "READY"
        # The two refused starts, as Chromium logs any 400; nothing else.
        refused = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        assert console.errors == [refused, refused]
