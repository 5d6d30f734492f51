"""Headless Chromium for the explorer tests, and what a test needs to read the page as a person.

The browser is Debian's Chromium, driven by Debian's chromedriver at fixed paths: Selenium is
given both, so it never runs Selenium Manager and never downloads a browser or a driver. Waits are
WebDriverWait conditions on the explorer's DOM contract (``main#view`` with ``data-view`` and
``data-state``), never sleeps.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Where screenshots go (gitignored with the rest of bench-results/).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "bench-results" / "explorer"
#: How long a view may take to load from a node on loopback before the test fails.
VIEW_TIMEOUT = 10.0

#: Headless, and nothing of Chromium's own on the network: no sync, no updates, no extensions, and
#: every host name but the node's loopback address unresolvable (Chromium otherwise looks up
#: Google's account and update hosts by itself).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
)

#: A stack trace leaking into the page: Python's, or a JavaScript error's name or frame line.
STACK_TRACE = re.compile(r"Traceback|File \"[^\"]+\", line \d+|\b\w*Error: |^\s*at \S.*:\d+:\d+\)?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Layout:
    """A viewport the explorer must work in."""

    #: Used in screenshot names.
    name: str
    width: int
    height: int
    device_scale_factor: float
    #: A phone: touch, a mobile user agent's viewport rules (the page's viewport meta tag applies).
    mobile: bool

    def apply(self, driver: WebDriver) -> None:
        """Emulate this viewport in the current tab; it holds across navigations until changed."""
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": self.width,
            "height": self.height,
            "deviceScaleFactor": self.device_scale_factor,
            "mobile": self.mobile,
        })
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": self.mobile, "maxTouchPoints": 5})


DESKTOP = Layout("desktop", 1280, 900, 1, mobile=False)
PHONE = Layout("phone", 390, 844, 3, mobile=True)
LAYOUTS = {layout.name: layout for layout in (DESKTOP, PHONE)}


def start_chromium(user_data_dir: Path) -> WebDriver:
    """Headless Chromium with a fresh profile in ``user_data_dir``, logging the page's console."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    # browser: the console, where uncaught errors land; performance: the network events, where a
    # test sees the websocket's frames.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.set_capability("goog:perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(VIEW_TIMEOUT)
    return driver


def javascript_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call: uncaught exceptions, rejected promises,
    console.error, resources that failed to load (but the favicon, which Chromium asks every
    origin for by itself)."""
    return [
        entry["message"] for entry in _log(driver, "browser")
        if entry["level"] == "SEVERE" and not (entry["source"] == "network" and "/favicon.ico " in entry["message"])
    ]


def websocket_frames_received(driver: WebDriver) -> list[str]:
    """The text of every websocket frame the page received since the last call."""
    frames = []
    for entry in _log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.webSocketFrameReceived":
            frames.append(message["params"]["response"]["payloadData"])
    return frames


def _log(driver: WebDriver, kind: str) -> list[dict[str, Any]]:
    """The entries of one of chromedriver's logs since the last read (reading empties it)."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def open_route(driver: WebDriver, base_url: str, route: str) -> None:
    """Load the explorer afresh at ``route`` (``#/...``): a page that was showing another route
    must not be mistaken for this one's, so the page is left first."""
    driver.get("about:blank")
    driver.get(f"{base_url}/explorer/{route}")


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T | None], what: Callable[[], str], *,
               timeout: float = VIEW_TIMEOUT) -> T:
    """``condition(driver)`` once it is truthy; at the deadline, fail with ``what()``: what the page shows."""
    try:
        found = WebDriverWait(driver, timeout).until(lambda driver: condition(driver) or False)
    except TimeoutException:
        raise AssertionError(f"waited {timeout:g} s at {driver.current_url}: {what()}") from None
    assert found is not None
    return found


def wait_view(
    driver: WebDriver, view: str | None, state: str = "ready", *, timeout: float = VIEW_TIMEOUT
) -> WebElement:
    """``main#view`` once it shows ``view`` (any view if None) in ``state``."""
    selector = "main#view" + (f'[data-view="{view}"]' if view else "") + f'[data-state="{state}"]'

    def shown() -> str:
        main = driver.execute_script(
            "const main = document.querySelector('main#view');"
            "return main ? [main.dataset.view, main.dataset.state, main.innerText.slice(0, 500)] : null;"
        )
        return f"expected {selector}; the page shows {main}"

    return wait_until(driver, lambda driver: _first(driver, selector), shown, timeout=timeout)


def wait_text(driver: WebDriver, selector: str, expected: str, *, timeout: float = VIEW_TIMEOUT) -> WebElement:
    """The element at ``selector`` once its visible text is ``expected``."""
    def shows(driver: WebDriver) -> WebElement | None:
        element = _first(driver, selector)
        return element if element is not None and element.text.strip() == expected else None

    def shown() -> str:
        element = _first(driver, selector)
        return f"expected {selector} to show {expected!r}; it shows {None if element is None else element.text!r}"

    return wait_until(driver, shows, shown, timeout=timeout)


def wait_for_element(driver: WebDriver, selector: str, *, timeout: float = VIEW_TIMEOUT) -> WebElement:
    """The first element at ``selector`` once there is one."""
    return wait_until(driver, lambda driver: _first(driver, selector), lambda: f"no {selector}", timeout=timeout)


def _first(driver: WebDriver, selector: str) -> WebElement | None:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


def text_of(driver: WebDriver, selector: str) -> str:
    """The visible text of the one element at ``selector``."""
    return driver.find_element(By.CSS_SELECTOR, selector).text.strip()


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def assert_no_stack_trace(driver: WebDriver) -> None:
    text = page_text(driver)
    leaked = STACK_TRACE.search(text)
    assert leaked is None, f"the page shows a stack trace ({leaked.group(0)!r}):\n{text[:2000]}"


def horizontal_overflow(driver: WebDriver, layout: Layout) -> int:
    """How many CSS pixels the page is wider than ``layout``'s screen (0: it fits).

    Measured against the screen's width, not ``window.innerWidth``: a mobile browser widens the
    layout viewport to a page wider than the screen (and zooms out), so there ``scrollWidth`` never
    exceeds ``innerWidth``.
    """
    scroll_width: Any = driver.execute_script("return document.documentElement.scrollWidth;")
    return max(0, int(scroll_width) - layout.width)


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page, at the viewport's width, as ``bench-results/explorer/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
