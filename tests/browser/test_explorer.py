"""The block explorer a node serves at /explorer/, read in Chromium as a person reads it.

Every test opens the first validator's explorer on the session's testnet and asserts what is on
the screen, through the DOM contract the page keeps for tests: ``main#view`` with ``data-view``
and ``data-state``, ids for the values a person looks for, ``data-field`` for a transaction's
and an asset's facts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from mura.chain.keys import SigningKey
from mura.chain.transaction import Transfer, sign_transaction
from mura.tests.browser.ledger import (
    BOND,
    BOND_FACE,
    BOND_FACE_TEXT,
    BOND_NAME,
    BOND_SUBSCRIBED_UNITS,
    BOND_UNITS_OFFERED,
    FINAL_WITHIN_SECONDS,
    LARGE_ASSET,
    LARGE_SUPPLY_TEXT,
    MARKUP_MEMO,
    TRANSFER_MEMO,
    Ledger,
)
from mura.tests.browser.pages import (
    Layout,
    assert_no_stack_trace,
    horizontal_overflow,
    open_route,
    save_screenshot,
    text_of,
    wait_for_element,
    wait_text,
    wait_until,
    wait_view,
    websocket_frames_received,
)
from mura.tests.node.cluster import Cluster

pytestmark = pytest.mark.browser

#: Hiragana, katakana or kanji: a label in Japanese.
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def field(driver: WebDriver, name: str) -> str:
    return text_of(driver, f'#view [data-field="{name}"]')


def attributes(driver: WebDriver, selector: str, name: str) -> list[str]:
    """Attribute ``name`` of every element at ``selector``, in page order, read in one step in the page
    (live updates may replace elements between two separate reads)."""
    found = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), (e) => e.getAttribute(arguments[1]) || '');",
        selector, name,
    )
    return [str(value) for value in found]


def search(driver: WebDriver, base_url: str, query: str) -> None:
    """Type ``query`` into the search box of the status page and press Search."""
    open_route(driver, base_url, "#/")
    wait_view(driver, "status")
    driver.find_element(By.CSS_SELECTOR, "form#search input#search-input").send_keys(query)
    driver.find_element(By.CSS_SELECTOR, "form#search button#search-go").click()


# --- status ---------------------------------------------------------------------------------------


def test_status_shows_the_height_and_latest_blocks_and_a_new_block_arrives_live(
    browser: WebDriver, base_url: str, cluster: Cluster, ledger: Ledger
) -> None:
    open_route(browser, base_url, "#/")
    wait_view(browser, "status")
    browser.execute_script("window.sameLoad = true;")
    shown = int(text_of(browser, "#status-height").replace(",", ""))
    assert 1 <= shown <= cluster.height(0)
    assert text_of(browser, "#status-since") != ""
    assert text_of(browser, "#status-view").isdigit()
    heights = [int(height) for height in attributes(browser, "#latest-blocks tr[data-height]", "data-height")]
    assert heights[0] >= shown and len(heights) > 1
    assert heights == sorted(heights, reverse=True), "the latest blocks are not newest first"
    newest = f'#latest-blocks tr[data-height="{heights[0]}"]'
    browser.find_element(By.CSS_SELECTOR, f'{newest} a[href="#/block/{heights[0]}"]')
    assert set(attributes(browser, "#status-validators tr[data-validator]", "data-validator")) == set(ledger.validators)
    signed = browser.execute_script(
        "return Array.from(document.querySelectorAll('#status-validators tr[data-validator] .signed'),"
        " (cell) => cell.textContent.trim());"
    )
    assert len(signed) == len(ledger.validators)
    for text in signed:
        assert re.fullmatch(r"\d+ / \d+", text), text

    wait_for_element(browser, '#live[data-live="on"]')
    wait_for_element(browser, f'#latest-blocks tr[data-height="{heights[0] + 1}"]')
    wait_until(browser, lambda driver: int(text_of(driver, "#status-height").replace(",", "")) > heights[0],
               lambda: f"#status-height still shows {text_of(browser, '#status-height')}")
    assert browser.execute_script("return window.sameLoad === true;"), "the page was reloaded"
    frames = websocket_frames_received(browser)
    assert any('"chain_subscription"' in frame for frame in frames), "no block notification came over the websocket"


def test_status_says_how_far_the_view_moved_over_the_blocks_it_shows(
    browser: WebDriver, base_url: str, cluster: Cluster
) -> None:
    """A view outlives its height, so a view above 0 is no view change of its own: the note compares
    the oldest and newest of the blocks listed, read in one go with the note."""
    open_route(browser, base_url, "#/")
    wait_view(browser, "status")
    heights, note = browser.execute_script(
        "return [Array.from(document.querySelectorAll('#latest-blocks tr[data-height]'),"
        " (row) => Number(row.getAttribute('data-height'))),"
        " document.getElementById('status-view-changes').textContent];"
    )
    views = [cluster.call(0, "chain_getCertificate", height)["view"] for height in (min(heights), max(heights))]
    if views[0] == views[1]:
        assert note == f"The view stayed at {views[0]} through the last {len(heights)} blocks: no primary was replaced."
    else:
        assert note.startswith(f"The view moved from {views[0]} to {views[1]} over the last {len(heights)} blocks")
    span = browser.execute_script(
        "return MuraExplorer.viewSpan([{height: 9, view: 4}, {height: 7, view: 1}, {height: 8, view: 1}]);"
    )
    assert span == {"from": 1, "to": 4}
    assert browser.execute_script("return MuraExplorer.viewSpan([]);") == {"from": 0, "to": 0}


# --- an account, a transaction, a block ------------------------------------------------------------


def test_account_shows_the_amount_received_and_the_transfer_in_its_history(
    browser: WebDriver, base_url: str, ledger: Ledger
) -> None:
    open_route(browser, base_url, f"#/account/{ledger.recipient}")
    wait_view(browser, "account")
    assert text_of(browser, "#account-address") == ledger.recipient
    assert text_of(browser, '#balances tr[data-asset="NAC"] .amount') == "12.50"
    assert text_of(browser, '#balances tr[data-asset="NAC"] .symbol') == "NAC"
    assert text_of(browser, '#balances tr[data-asset="JPYT"] .amount') == "30,000"
    history = attributes(browser, "#history tr[data-tx]", "data-tx")
    assert sorted(history) == sorted([ledger.transfer["hash"], ledger.jpyt_transfer["hash"]])
    assert "12.50" in text_of(browser, f'#history tr[data-tx="{ledger.transfer["hash"]}"]')
    more = browser.find_elements(By.ID, "history-more")
    assert not (more and more[0].is_displayed()), "a second page is offered for two transactions"

    browser.find_element(By.CSS_SELECTOR, f'#history tr[data-tx="{ledger.transfer["hash"]}"] a[href^="#/tx/"]').click()
    wait_view(browser, "tx")
    assert field(browser, "amount") == "12.50 NAC"


def test_transaction_page_shows_kind_parties_amount_memo_status_and_block(
    browser: WebDriver, base_url: str, ledger: Ledger
) -> None:
    transfer = ledger.transfer
    open_route(browser, base_url, f"#/tx/{transfer['hash']}")
    wait_view(browser, "tx")
    assert field(browser, "kind").lower() == "transfer"
    assert ledger.treasury in field(browser, "sender")
    assert ledger.recipient in field(browser, "recipient")
    assert field(browser, "amount") == "12.50 NAC"
    assert field(browser, "memo") == TRANSFER_MEMO
    assert "final" in field(browser, "status").lower()
    height = transfer["block_height"]
    assert f"{height:,}" in field(browser, "block")
    browser.find_element(By.CSS_SELECTOR, f'#view [data-field="block"] a[href="#/block/{height}"]')


def test_a_pending_transaction_turns_final_on_its_page_without_a_reload_or_a_redraw_meanwhile(
    browser: WebDriver, base_url: str, cluster: Cluster, ledger: Ledger
) -> None:
    payer = SigningKey.generate()  # given 200 and sending it all back: no new holder for the other tests
    funding = cluster.submit(0, cluster.sign(cluster.treasury, Transfer("NAC", payer.public_key, 200)))
    cluster.call(0, "tx_wait", funding, FINAL_WITHIN_SECONDS)
    # Nonce 1 before nonce 0: the pool holds it until the gap is filled.
    later, first = (sign_transaction(payer, chain_id=cluster.chain_id, nonce=nonce,
                                     body=Transfer("NAC", cluster.treasury.public_key, 100)) for nonce in (1, 0))
    later_hash = cluster.submit(0, later)
    open_route(browser, base_url, f"#/tx/{later_hash}")
    wait_view(browser, "tx")
    assert field(browser, "status").startswith("Pending")
    browser.execute_script(
        "window.sameLoad = true; window.redraws = 0;"
        "new MutationObserver(() => { if (document.getElementById('view').getAttribute('data-state') === 'loading')"
        " window.redraws += 1; }).observe(document.getElementById('view'), {attributes: true});"
    )
    height = cluster.height(0)
    wait_until(browser, lambda driver: cluster.height(0) >= height + 3, lambda: "three more blocks")
    assert field(browser, "status").startswith("Pending")
    assert browser.execute_script("return window.redraws;") == 0, "the pending page was drawn again at a block"

    cluster.call(0, "tx_wait", cluster.submit(0, first), FINAL_WITHIN_SECONDS)
    wait_until(browser, lambda driver: field(driver, "status") == "Final", lambda: field(browser, "status"))
    assert browser.execute_script("return window.sameLoad === true;"), "the page was reloaded"
    assert f"{cluster.call(0, 'chain_getTransaction', later_hash)['block_height']:,}" in field(browser, "block")


def test_a_memo_of_html_markup_is_shown_as_text(browser: WebDriver, base_url: str, ledger: Ledger) -> None:
    open_route(browser, base_url, f"#/tx/{ledger.markup_transfer['hash']}")
    wait_view(browser, "tx")
    assert field(browser, "memo") == MARKUP_MEMO
    assert browser.find_elements(By.CSS_SELECTOR, "#view img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is what raises when there is none)


def test_block_page_lists_the_certificate_signers_and_the_transactions(
    browser: WebDriver, base_url: str, cluster: Cluster, ledger: Ledger
) -> None:
    height = ledger.transfer["block_height"]
    open_route(browser, base_url, f"#/block/{height}")
    wait_view(browser, "block")
    assert text_of(browser, "#block-height") == f"{height:,}"
    assert text_of(browser, "#block-hash") == ledger.transfer["block_hash"]
    signers = attributes(browser, "#block-signers tr[data-validator]", "data-validator")
    certificate = cluster.call(0, "chain_getCertificate", height)
    assert sorted(signers) == sorted(signature["validator"] for signature in certificate["signatures"])
    assert len(signers) >= 3 and set(signers) <= set(ledger.validators)
    transactions = attributes(browser, "#block-transactions tr[data-tx]", "data-tx")
    assert sorted(transactions) == sorted(cluster.call(0, "chain_getBlock", height)["transactions"])
    assert ledger.transfer["hash"] in transactions


# --- an asset, the validators ---------------------------------------------------------------------


def test_asset_page_shows_supply_and_holders(browser: WebDriver, base_url: str, ledger: Ledger) -> None:
    open_route(browser, base_url, "#/asset/NAC")
    wait_view(browser, "asset")
    assert field(browser, "supply") == "1,000,000.00 NAC"
    assert field(browser, "lapsed") == "0.00 NAC"
    holders = attributes(browser, "#holders tr[data-holder]", "data-holder")
    assert sorted(holders) == sorted([ledger.treasury, ledger.recipient, ledger.markup_recipient])
    assert "12.50" in text_of(browser, f'#holders tr[data-holder="{ledger.recipient}"]')
    assert "999,986.50" in text_of(browser, f'#holders tr[data-holder="{ledger.treasury}"]')


def test_amounts_past_two_to_the_53_keep_every_digit(browser: WebDriver, base_url: str, ledger: Ledger) -> None:
    open_route(browser, base_url, f"#/asset/{LARGE_ASSET}")
    wait_view(browser, "asset")
    assert field(browser, "supply") == f"{LARGE_SUPPLY_TEXT} {LARGE_ASSET}"
    assert LARGE_SUPPLY_TEXT in text_of(browser, f'#holders tr[data-holder="{ledger.bank}"]')
    open_route(browser, base_url, f"#/tx/{ledger.large_issue['hash']}")
    wait_view(browser, "tx")
    assert field(browser, "amount") == f"{LARGE_SUPPLY_TEXT} {LARGE_ASSET}"


def test_validators_page_lists_the_four_validators(browser: WebDriver, base_url: str, ledger: Ledger) -> None:
    open_route(browser, base_url, "#/validators")
    wait_view(browser, "validators")
    assert sorted(attributes(browser, "#view tr[data-validator]", "data-validator")) == sorted(ledger.validators)


def test_validators_page_shows_open_and_decided_proposals_in_words(
    browser: WebDriver, base_url: str, ledger: Ledger
) -> None:
    open_route(browser, base_url, "#/validators")
    wait_view(browser, "validators")
    opened, approved = ledger.open_proposal, ledger.approved_proposal
    row = f'#proposals tr[data-proposal="{opened["id"]}"]'
    assert text_of(browser, f"{row} td.change").startswith("Give the issuer role to")
    browser.find_element(By.CSS_SELECTOR, f'{row} td.change a[href="#/account/{opened["change"]["account"]}"]')
    assert text_of(browser, f"{row} td:nth-child(4)") == f"1 / {opened['quorum']}"
    assert attributes(browser, "#decided-proposals tr[data-proposal]", "data-proposal") == [str(approved["id"])]
    decided = f'#decided-proposals tr[data-proposal="{approved["id"]}"]'
    assert text_of(browser, f"{decided} td.outcome") == (
        f"approved: in force from height {approved['activation_height']:,}")
    assert text_of(browser, f"{decided} td:nth-child(4)") == "3"
    browser.find_element(By.CSS_SELECTOR, f'{decided} td.change a[href="#/account/{approved["change"]["account"]}"]')


def test_bond_page_shows_terms_schedule_offering_and_proceeds(
    browser: WebDriver, base_url: str, ledger: Ledger
) -> None:
    open_route(browser, base_url, f"#/bond/{BOND}")
    wait_view(browser, "bond")
    assert text_of(browser, '#bond-terms [data-field="name"]') == BOND_NAME
    assert text_of(browser, '#bond-terms [data-field="face"]') == BOND_FACE_TEXT
    assert text_of(browser, '#bond-terms [data-field="rate"]') == "1.25%"
    # Two coupons and the redemption, none due yet.
    assert attributes(browser, "#bond-schedule tr[data-payment]", "data-payment") == ["0", "1", "2"]
    statuses = attributes(browser, "#bond-schedule tr[data-payment] .status", "data-status")
    assert statuses == ["scheduled"] * 3
    assert text_of(browser, '#bond-offering [data-field="units"]') == str(BOND_UNITS_OFFERED)
    assert text_of(browser, '#bond-offering [data-field="subscribed"]') == str(BOND_SUBSCRIBED_UNITS)
    assert attributes(browser, "#bond-subscriptions tr[data-subscriber]", "data-subscriber") == [ledger.investor]
    paid = f"{BOND_SUBSCRIBED_UNITS * BOND_FACE:,} JPYT"
    assert text_of(browser, f'#bond-subscriptions tr[data-subscriber="{ledger.investor}"] td:nth-child(3)') == paid
    assert text_of(browser, '#bond-proceeds [data-field="spent"]') == "0 JPYT"
    # The bond's asset page points to this page.
    open_route(browser, base_url, f"#/asset/{BOND}")
    wait_view(browser, "asset")
    browser.find_element(By.CSS_SELECTOR, f'#view a[href="#/bond/{BOND}"]')


# --- search ---------------------------------------------------------------------------------------

#: What to type (from the ledger), the view it leads to, and what that view must then show.
SEARCHES: dict[str, tuple[Callable[[Ledger], str], str, Callable[[Ledger], tuple[str, str]]]] = {
    "height": (lambda ledger: str(ledger.transfer["block_height"]), "block",
               lambda ledger: ("#block-height", f"{ledger.transfer['block_height']:,}")),
    "block hash": (lambda ledger: ledger.transfer["block_hash"], "block",
                   lambda ledger: ("#block-hash", ledger.transfer["block_hash"])),
    "transaction hash": (lambda ledger: ledger.transfer["hash"], "tx",
                         lambda ledger: ('[data-field="memo"]', TRANSFER_MEMO)),
    "address": (lambda ledger: ledger.recipient, "account", lambda ledger: ("#account-address", ledger.recipient)),
    "asset id": (lambda ledger: "NAC", "asset", lambda ledger: ('[data-field="supply"]', "1,000,000.00 NAC")),
    "bond id": (lambda ledger: BOND.lower(), "bond", lambda ledger: ('[data-field="name"]', BOND_NAME)),
}


@pytest.mark.parametrize("kind", SEARCHES)
def test_search_goes_to_the_page_of_what_was_found(
    browser: WebDriver, base_url: str, ledger: Ledger, kind: str
) -> None:
    query, view, shows = SEARCHES[kind]
    search(browser, base_url, query(ledger))
    wait_view(browser, view)
    selector, expected = shows(ledger)
    wait_text(browser, f"#view {selector}", expected)


@pytest.mark.parametrize("query", ["ZZZ-NOPE", "0x" + "0" * 64, "tnac1xyz"])
def test_search_for_nothing_known_says_so_and_stays(browser: WebDriver, base_url: str, query: str) -> None:
    search(browser, base_url, query)
    message = wait_until(browser, lambda driver: text_of(driver, "#search-message"),
                         lambda: "#search-message stayed empty")
    assert browser.find_element(By.ID, "search-message").get_attribute("role") == "alert"
    assert len(message) > 10, f"{message!r} is not a sentence"
    wait_view(browser, "status")
    assert_no_stack_trace(browser)


# --- what cannot be shown -------------------------------------------------------------------------

MALFORMED_ROUTES = {
    "negative height": "#/block/-1",
    "undecodable address": "#/account/%%%",
    "short hash": "#/tx/0x12",
    "no such page": "#/nonsense",
    "5,000 characters": "#/block/" + "9" * (5_000 - len("#/block/")),
    "block not made yet": "#/block/99999999",
    "unknown transaction": "#/tx/0x" + "0" * 64,
    "unknown asset": "#/asset/ZZZ-NOPE",
    "asset id too long": "#/asset/" + "A" * 33,
    "account without an address": "#/account/",
    "list with a part after it": "#/assets/x",
}


@pytest.mark.parametrize("route", MALFORMED_ROUTES.values(), ids=MALFORMED_ROUTES.keys())
def test_a_route_with_nothing_to_show_shows_a_message(browser: WebDriver, base_url: str, route: str) -> None:
    open_route(browser, base_url, route)
    view = wait_view(browser, None, "error")
    message = view.find_element(By.CSS_SELECTOR, ".message")
    assert message.is_displayed() and len(message.text.strip()) > 10, f"the message is {message.text!r}"
    assert message.get_attribute("role") == "alert"
    assert view.text.strip() != ""
    assert_no_stack_trace(browser)


# --- language -------------------------------------------------------------------------------------


def test_japanese_labels_are_chosen_with_the_language_button_and_survive_a_reload(
    browser: WebDriver, base_url: str
) -> None:
    open_route(browser, base_url, "#/")
    wait_view(browser, "status")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert not JAPANESE.search(labels(browser) + text_of(browser, "#view"))

    browser.find_element(By.ID, "lang").click()
    wait_for_japanese(browser)
    browser.refresh()
    wait_for_japanese(browser)
    save_screenshot(browser, "status-desktop-ja")

    browser.find_element(By.ID, "lang").click()
    wait_until(browser, lambda driver: driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en",
               lambda: "<html lang> did not return to en")
    wait_view(browser, "status")
    assert not JAPANESE.search(labels(browser))


def labels(driver: WebDriver) -> str:
    """The text of every labelled element."""
    return "\n".join(element.text for element in driver.find_elements(By.CSS_SELECTOR, "[data-i18n]"))


def wait_for_japanese(driver: WebDriver) -> None:
    """The page in Japanese: ``<html lang=ja>``, the labels and the status view's own words."""
    def japanese(driver: WebDriver) -> bool:
        return (driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
                and bool(driver.find_elements(By.CSS_SELECTOR, 'main#view[data-view="status"][data-state="ready"]'))
                and bool(JAPANESE.search(labels(driver))) and bool(JAPANESE.search(text_of(driver, "#view"))))

    wait_until(driver, japanese, lambda: f"lang={driver.find_element(By.TAG_NAME, 'html').get_attribute('lang')}, "
               f"labels {labels(driver)[:200]!r}")


# --- every main view, at a desktop's and a phone's width ------------------------------------------

MAIN_VIEWS: dict[str, Callable[[Ledger], str]] = {
    "status": lambda ledger: "#/",
    "block": lambda ledger: f"#/block/{ledger.transfer['block_height']}",
    "tx": lambda ledger: f"#/tx/{ledger.transfer['hash']}",
    "account": lambda ledger: f"#/account/{ledger.recipient}",
    "asset": lambda ledger: "#/asset/NAC",
    "bond": lambda ledger: f"#/bond/{BOND}",
    "validators": lambda ledger: "#/validators",
}


@pytest.mark.parametrize("view", MAIN_VIEWS)
def test_main_view_fits_the_screen_width(
    browser: WebDriver, layout: Layout, base_url: str, ledger: Ledger, view: str
) -> None:
    open_route(browser, base_url, MAIN_VIEWS[view](ledger))
    wait_view(browser, view)
    save_screenshot(browser, f"{view}-{layout.name}")
    overflow = horizontal_overflow(browser, layout)
    assert overflow == 0, f"the {view} page is {overflow} px wider than the {layout.name}'s {layout.width} px"
    # A phone's browser widens the page to content too wide for it instead of scrolling sideways.
    assert browser.execute_script("return window.innerWidth;") == layout.width


@pytest.mark.parametrize(("change", "text"), [
    ({"kind": "add_validator", "name": "School <b>board</b>", "address": "10.0.0.9:9700",
      "public_key": "0x" + "ab" * 32},
     "Add validator School <b>board</b> at 10.0.0.9:9700, key 0xababab…abababab"),
    ({"kind": "remove_validator", "public_key": "0x" + "01" * 32}, "Remove validator village-office"),
    ({"kind": "remove_validator", "public_key": "0x" + "02" * 32}, "Remove validator 0x020202…02020202"),
    ({"kind": "replace_key", "old_key": "0x" + "01" * 32, "new_key": "0x" + "03" * 32, "address": ""},
     "New key for village-office: 0x030303…03030303"),
    ({"kind": "replace_key", "old_key": "0x" + "01" * 32, "new_key": "0x" + "03" * 32, "address": "10.0.0.2:9700"},
     "New key for village-office: 0x030303…03030303, at 10.0.0.2:9700"),
    ({"kind": "revoke_issuer", "account": "tnac1abc", "public_key": "0x" + "04" * 32},
     "Take the issuer role from tnac1abc"),
    ({"kind": "a_later_kind", "x": 1}, '{"kind":"a_later_kind","x":1}'),
])
def test_proposed_changes_read_as_sentences(
    browser: WebDriver, base_url: str, change: dict[str, Any], text: str
) -> None:
    open_route(browser, base_url, "#/validators")
    wait_view(browser, "validators")
    names = {"0x" + "01" * 32: "village-office"}
    assert browser.execute_script("return MuraExplorer.changeText(arguments[0], arguments[1]);", change, names) == text
