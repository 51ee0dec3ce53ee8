"""The web console in a real browser (Debian's headless chromium driven by Selenium) against the real
daemon: sign in, an incident opened by posted events appears in the live list, acknowledge it and
see the timeline; a viewer gets no action button and a forged POST is refused; the wall refreshes.

One daemon and one browser for the module. Screenshots are kept in a temporary directory (printed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.api.auth import hash_token
from tests.support.browser import chromium
from tests.support.daemon import DaemonProcess, base_config, free_port

pytestmark = pytest.mark.integration

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: make venv")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKENS = {
    "noc-viewer": {"role": "viewer", "sha256": hash_token("view-123")},
    "noc-operator": {"role": "operator", "sha256": hash_token("op-456")},
}
RULE = """
rules:
  - name: port-flap
    kind: threshold
    match: {type: linkDown}
    group_by: [host]
    count: 2
    within: 5m
    on_fire:
      - incident: {action: open, title: "{host} port flapping", impact: 2, urgency: 2}
"""
WAIT = 20.0  # the live list and the wall refresh every 5 s


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    work = tmp_path_factory.mktemp("console")
    rules = work / "myrules"
    rules.mkdir()
    (rules / "flap.yaml").write_text(RULE)
    port = free_port()
    d = DaemonProcess(work, base_config(work, port, rules_dir=str(rules), http={"tokens": TOKENS}), port)
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-screenshots")
    print(f"console screenshots in {path}")
    return path


def sign_in(browser, d: DaemonProcess, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(d.url + "/signin")
    browser.find_element(By.ID, "token").send_keys(token + Keys.ENTER)  # the keyboard is enough
    WebDriverWait(browser, WAIT).until(lambda b: b.current_url.endswith("/incidents"))


def flap(d: DaemonProcess, host: str) -> None:
    for _ in range(2):
        status, _ = d.post_json("/api/v1/events", {"host": host, "type": "linkDown", "severity": "major"})
        assert status == 202


def rows(browser, table: str) -> list[str]:
    # Read in one script: the page swaps the table's rows every few seconds, and an element found
    # by one WebDriver call can be gone (stale) by the next.
    return list(
        browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), r => r.dataset.id)",
            f"#{table} tbody tr[data-id]",
        )
    )


def test_sign_in_see_the_incident_arrive_acknowledge_it_and_see_the_timeline(daemon, browser, shots):
    sign_in(browser, daemon, "op-456")
    assert rows(browser, "incidents") == []
    loaded = browser.execute_script("return performance.timeOrigin")
    flap(daemon, "edge-sw7")
    # The live list picks the incident up by itself: no reload, no navigation.
    WebDriverWait(browser, WAIT).until(lambda b: rows(b, "incidents") == ["INC-000001"])
    assert browser.execute_script("return performance.timeOrigin") == loaded
    assert browser.find_element(By.ID, "count-P3").text == "1"
    browser.save_screenshot(str(shots / "incidents.png"))
    browser.find_element(By.LINK_TEXT, "INC-000001").click()
    assert "edge-sw7 port flapping" in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_element(By.ID, "status").text == "new"
    events = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert events and "linkDown" in events[0].text and "edge-sw7" in events[0].text
    assert "port-flap" in browser.page_source  # the correlation rule
    browser.find_element(By.ID, "ack-note").send_keys("looking at the optics")
    browser.find_element(By.ID, "ack-note").send_keys(Keys.TAB)  # focus moves on to the button
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "do-ack"
    active.send_keys(Keys.ENTER)
    WebDriverWait(browser, WAIT).until(lambda b: b.find_element(By.ID, "status").text == "acknowledged")
    entries = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")]
    assert any("ack by noc-operator" in e and "looking at the optics" in e for e in entries), entries
    assert browser.find_elements(By.ID, "do-ack") == []  # no second acknowledgement offered
    browser.save_screenshot(str(shots / "incident.png"))
    # The API sees what the console did (with its own token: the console's cookie is not one).
    assert daemon.get("/api/v1/incidents/INC-000001")[0] == 401
    _, _, body = daemon.request(
        "GET", "/api/v1/incidents/INC-000001", headers={"Authorization": "Bearer view-123"}
    )
    assert b'"status":"acknowledged"' in body


def test_viewer_gets_no_action_button_and_a_forged_post_is_refused(daemon, browser, shots):
    sign_in(browser, daemon, "view-123")
    browser.get(daemon.url + "/incidents/INC-000001")
    assert browser.find_element(By.ID, "status").text == "acknowledged"
    assert browser.find_elements(By.CSS_SELECTOR, "#actions, [id^='do-']") == []
    browser.save_screenshot(str(shots / "incident-viewer.png"))
    forge = """
        const done = arguments[arguments.length - 1];
        const body = new URLSearchParams(arguments[0]);
        fetch('/incidents/INC-000001/resolve', {method: 'POST', body: body, credentials: 'same-origin'})
          .then(r => done(r.status), e => done(String(e)));
    """
    assert browser.execute_async_script(forge, {}) == 403  # no CSRF token
    assert browser.execute_async_script(forge, {"csrf": "0" * 64}) == 403  # a wrong one
    # Even with the page's own valid token, a viewer may not resolve (the API's operator role).
    token = browser.find_element(By.CSS_SELECTOR, "input[name='csrf']").get_attribute("value")
    assert browser.execute_async_script(forge, {"csrf": token}) == 403
    # Without the session cookie at all (another client): no session.
    assert daemon.request("POST", "/incidents/INC-000001/resolve", b"csrf=" + token.encode(), {
        "Content-Type": "application/x-www-form-urlencoded"})[0] == 401  # fmt: skip
    _, _, body = daemon.request(
        "GET", "/api/v1/incidents/INC-000001", headers={"Authorization": "Bearer view-123"}
    )
    assert b'"status":"acknowledged"' in body
    assert daemon.metric("correlator_console_refusals_total", {"reason": "csrf"}) == 2
    assert daemon.metric("correlator_console_refusals_total", {"reason": "forbidden"}) == 1


def test_wall_view_refreshes_by_itself(daemon, browser, shots):
    sign_in(browser, daemon, "view-123")
    browser.get(daemon.url + "/wall")
    assert rows(browser, "wall-incidents") == ["INC-000001"]
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(11, 13, 16)"  # dark
    loaded = browser.execute_script("return performance.timeOrigin")
    flap(daemon, "core-rtr2")
    start = time.monotonic()
    WebDriverWait(browser, WAIT).until(lambda b: len(rows(b, "wall-incidents")) == 2)
    assert browser.execute_script("return performance.timeOrigin") == loaded  # same page, new rows
    assert int(browser.find_element(By.ID, "wall").get_attribute("data-refreshed")) >= 1
    assert "Open incidents: 2" in browser.find_element(By.TAG_NAME, "h1").text
    assert time.monotonic() - start < WAIT
    browser.save_screenshot(str(shots / "wall.png"))
