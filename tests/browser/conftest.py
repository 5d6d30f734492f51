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
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from mura.chain.address import encode_address
from mura.chain.governance import GrantIssuer
from mura.chain.keys import SigningKey, load_key
from mura.chain.transaction import Approve, IssueAsset, IssueBond, OpenOffering, Propose, Subscribe, Transfer
from mura.tests.browser.ledger import (
    BOND,
    BOND_FACE,
    BOND_NAME,
    BOND_SUBSCRIBED_UNITS,
    BOND_UNITS_OFFERED,
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
    validator_keys = [load_key(cluster.directory / "keys" / f"{name}.key")
                      for name in cluster.names[: cluster.validators]]
    granted, proposed = SigningKey.generate().public_key, SigningKey.generate().public_key
    submitted += [cluster.submit(0, cluster.sign(validator_keys[0], Propose(GrantIssuer(account))))
                  for account in (granted, proposed)]
    investor = SigningKey.generate()
    now = time.time_ns() // 1_000_000
    day = 86_400_000
    bond = IssueBond(
        asset=BOND, name=BOND_NAME, units=10, registrar=b"", policy="open", settlement="JPYT", face=BOND_FACE,
        rate=12_500, frequency=2, first_period_days=0, coupon_times=(now + 180 * day, now + 360 * day),
        maturity_ms=now + 360 * day, issue_ms=now, paying=bank.public_key, proceeds=b"",
        use_of_proceeds="forest road repair", green=True,
    )  # fmt: skip
    submitted += [
        cluster.submit(0, cluster.sign(bank, bond)),
        cluster.submit(0, cluster.sign(bank, Transfer("JPYT", investor.public_key, 100_000))),
    ]
    transfer, jpyt_transfer, markup_transfer, large_issue, *_ = (
        cluster.call(0, "tx_wait", transaction_hash, FINAL_WITHIN_SECONDS) for transaction_hash in submitted
    )
    # The offering needs its bond final, and the subscription its offering.
    for key, body in ((bank, OpenOffering(BOND, BOND_UNITS_OFFERED, BOND_FACE, now, now + day, 1, 0, 0)),
                      (investor, Subscribe(BOND, BOND_SUBSCRIBED_UNITS))):
        cluster.call(0, "tx_wait", cluster.submit(0, cluster.sign(key, body)), FINAL_WITHIN_SECONDS)
    proposals = {proposal["change"]["public_key"]: proposal
                 for proposal in cluster.call(0, "governance_getProposals", "open")["proposals"]}
    grant = proposals["0x" + granted.hex()]
    for approver in validator_keys[1:3]:
        cluster.call(0, "tx_wait", cluster.submit(0, cluster.sign(approver, Approve(grant["id"]))),
                     FINAL_WITHIN_SECONDS)
    approved = cluster.call(0, "governance_getProposals", "approved")["proposals"]
    return Ledger(
        treasury=encode_address(cluster.treasury.public_key, cluster.prefix),
        bank=encode_address(bank.public_key, cluster.prefix),
        recipient=encode_address(recipient, cluster.prefix),
        transfer=transfer,
        jpyt_transfer=jpyt_transfer,
        markup_transfer=markup_transfer,
        markup_recipient=encode_address(markup_recipient, cluster.prefix),
        large_issue=large_issue,
        investor=encode_address(investor.public_key, cluster.prefix),
        validators=cluster.status(0)["validators"],
        approved_proposal=next(proposal for proposal in approved if proposal["id"] == grant["id"]),
        open_proposal=proposals["0x" + proposed.hex()],
    )


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
def browser(chromium: WebDriver) -> Iterator[WebDriver]:
    """The browser at the desktop viewport, on a blank page with empty logs; a JavaScript error
    the page logs during the test fails it (a websocket the node refused included).
    """
    from mura.tests.browser.pages import DESKTOP, javascript_errors, websocket_frames_received

    chromium.get("about:blank")
    DESKTOP.apply(chromium)
    javascript_errors(chromium)
    websocket_frames_received(chromium)
    yield chromium
    errors = javascript_errors(chromium)
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

