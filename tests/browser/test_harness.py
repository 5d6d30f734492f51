"""The browser harness itself: Chromium starts, reaches a node, and a broken page cannot pass."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from mura.tests.browser.pages import javascript_errors

pytestmark = pytest.mark.browser


def test_browser_reads_the_node_health(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/health")
    assert json.loads(browser.find_element(By.TAG_NAME, "pre").text)["status"] == "ok"


def test_an_uncaught_error_in_a_page_is_seen(browser: WebDriver) -> None:
    browser.get("data:text/html,<script>null.property</script><p>broken</p>")
    errors = javascript_errors(browser)
    assert len(errors) == 1 and "Uncaught TypeError" in errors[0]
