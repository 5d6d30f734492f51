"""The browser harness itself: Chromium starts and reaches a node, and each check the explorer
tests lean on fails on a page that breaks it."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from mura.tests.browser.pages import PHONE, assert_no_stack_trace, horizontal_overflow, javascript_errors

pytestmark = pytest.mark.browser


def test_browser_reads_the_node_health(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/health")
    assert json.loads(browser.find_element(By.TAG_NAME, "pre").text)["status"] == "ok"


def test_an_uncaught_error_in_a_page_is_seen(browser: WebDriver) -> None:
    browser.get("data:text/html,<script>null.property</script><p>broken</p>")
    errors = javascript_errors(browser)
    assert len(errors) == 1 and "Uncaught TypeError" in errors[0]


def test_a_page_wider_than_a_phone_is_seen(browser: WebDriver) -> None:
    PHONE.apply(browser)
    browser.get("data:text/html,<meta name=viewport content='width=device-width, initial-scale=1'>"
                "<div style='width:500px'>wide</div>")
    assert horizontal_overflow(browser, PHONE) > 0


@pytest.mark.parametrize("trace", [
    "TypeError: block is undefined<br>    at renderBlock (http://127.0.0.1/explorer/explorer.js:12:5)",
    "Traceback (most recent call last):<br>  File \"rpc/server.py\", line 3, in handle",
])
def test_a_stack_trace_in_a_page_is_seen(browser: WebDriver, trace: str) -> None:
    browser.get(f"data:text/html,<p>{trace}</p>")
    with pytest.raises(AssertionError, match="stack trace"):
        assert_no_stack_trace(browser)
