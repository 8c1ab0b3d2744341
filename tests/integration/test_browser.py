"""The web page at /, driven in headless Chromium: type, speak, listen, see the release."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT = Path("/tmp/ui.png")


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_typing_text_and_pressing_speak_gives_a_playable_recording(page, tts_server, manifest):
    page.goto(tts_server.url + "/")
    expect(page.locator("#version")).to_contain_text(manifest["version"])
    expect(page.locator("#color")).to_have_text("green")
    expect(page.locator("#voice option").first).to_be_attached()

    page.fill("#text", "Hello from a headless browser.")
    page.select_option("#voice", "alloy")
    page.click("#speak")

    page.wait_for_function("""() => {
        const player = document.getElementById('player');
        return player.src.startsWith('blob:') && player.readyState >= 1 && player.duration > 0;
    }""", timeout=30_000)
    assert page.locator("#download").get_attribute("href").startswith("blob:")
    expect(page.locator("#status")).to_contain_text("KiB of audio")
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_refused_request_shows_the_servers_message(page, tts_server):
    page.goto(tts_server.url + "/")
    page.fill("#text", "a" * 2001)
    page.click("#speak")
    expect(page.locator("#status")).to_contain_text("Error: 'input' has 2001 characters")
