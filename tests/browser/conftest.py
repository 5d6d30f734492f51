"""One testnet of real node processes and one headless Chromium for every explorer test.

The testnet (4 validators, fast timers) and the browser start once per run; each test gets the
browser at the desktop viewport with the console emptied, and fails if the page logged a
JavaScript error while it ran. ``ledger`` holds the transfers the tests look for, made once and
final before the first test.

The browser tests need the ``browser`` extra (Selenium) and Debian's Chromium: ``make test-browser``
installs both. Without Selenium (``make test`` on a fresh venv) their modules are not collected.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from mura.chain.address import encode_address
from mura.chain.keys import SigningKey, load_key
from mura.chain.transaction import IssueAsset, Transfer
from mura.tests.browser.ledger import (
    FINAL_WITHIN_SECONDS,
    JPYT_AMOUNT,
    LARGE_ASSET,
    LARGE_SUPPLY,
    MARKUP_MEMO,
    TRANSFER_AMOUNT,
    TRANSFER_MEMO,
    Ledger,
)
from mura.tests.node.cluster import Cluster

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

    from mura.tests.browser.pages import Layout

if importlib.util.find_spec("selenium") is None:
    # make test's venv has no browser extra; its -m "not browser" would deselect these tests anyway.
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Four validators, so every certificate has several signers."""
    cluster = Cluster(tmp_path_factory.mktemp("explorer") / "testnet", validators=4)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def base_url(cluster: Cluster) -> str:
    """The first validator's JSON-RPC port, where it serves the explorer."""
    return f"http://127.0.0.1:{cluster.rpc_ports[0]}"


@pytest.fixture(scope="session")
def ledger(cluster: Cluster) -> Ledger:
    bank = load_key(cluster.directory / "keys" / "bank.key")
    recipient, markup_recipient = SigningKey.generate().public_key, SigningKey.generate().public_key
    submitted = [
        cluster.submit(0, cluster.sign(cluster.treasury, Transfer("NAC", recipient, TRANSFER_AMOUNT, TRANSFER_MEMO))),
        cluster.submit(0, cluster.sign(bank, Transfer("JPYT", recipient, JPYT_AMOUNT))),
        cluster.submit(0, cluster.sign(cluster.treasury, Transfer("NAC", markup_recipient, 100, MARKUP_MEMO))),
        cluster.submit(0, cluster.sign(bank, IssueAsset(LARGE_ASSET, "Vault certificates", 2, LARGE_SUPPLY,
                                                        reissuable=False, cap=0, registrar=b"", policy="open",
                                                        expiry_ms=0))),
    ]
    transfer, jpyt_transfer, markup_transfer, large_issue = (
        cluster.call(0, "tx_wait", transaction_hash, FINAL_WITHIN_SECONDS) for transaction_hash in submitted
    )
    return Ledger(
        treasury=encode_address(cluster.treasury.public_key, cluster.prefix),
        bank=encode_address(bank.public_key, cluster.prefix),
        recipient=encode_address(recipient, cluster.prefix),
        transfer=transfer,
        jpyt_transfer=jpyt_transfer,
        markup_transfer=markup_transfer,
        markup_recipient=encode_address(markup_recipient, cluster.prefix),
        large_issue=large_issue,
        validators=cluster.status(0)["validators"],
    )


@pytest.fixture(scope="session")
def subscriptions(cluster: Cluster) -> bool:
    """Whether the node declares ``chain_subscribe`` (websocket subscriptions at ``/ws``)."""
    return any(method["name"] == "chain_subscribe" for method in cluster.call(0, "rpc.discover")["methods"])


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium for the whole run, on a fresh profile."""
    from mura.tests.browser.pages import start_chromium

    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: WebDriver, subscriptions: bool) -> Iterator[WebDriver]:
    """The browser at the desktop viewport, on a blank page with empty logs; a JavaScript error
    the page logs during the test fails it.

    A node that declares no websocket subscriptions yet answers the page's websocket with 404,
    which the console logs: that one line is let pass there, and only there.
    """
    from mura.tests.browser.pages import DESKTOP, NO_WEBSOCKET, javascript_errors, websocket_frames_received

    chromium.get("about:blank")
    DESKTOP.apply(chromium)
    javascript_errors(chromium)
    websocket_frames_received(chromium)
    yield chromium
    errors = [error for error in javascript_errors(chromium) if subscriptions or not NO_WEBSOCKET.search(error)]
    _forget_the_page(chromium)
    assert not errors, "the page logged JavaScript errors:\n" + "\n".join(errors)


@pytest.fixture(params=["desktop", "phone"])
def layout(request: pytest.FixtureRequest, browser: WebDriver) -> Layout:
    """The test runs at a desktop's viewport (1280 x 900) and again at a phone's (390 x 844 CSS
    pixels, touch, a mobile browser's viewport rules)."""
    from mura.tests.browser.pages import LAYOUTS

    chosen = LAYOUTS[request.param]
    chosen.apply(browser)
    return chosen


def _forget_the_page(driver: WebDriver) -> None:
    """What one test set in the page's storage (the language) does not reach the next."""
    if driver.current_url.startswith("http"):
        driver.execute_script("window.localStorage.clear();")
    driver.get("about:blank")

