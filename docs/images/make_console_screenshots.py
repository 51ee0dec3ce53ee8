"""Makes the console screenshots of the README: a daemon on a free port with a few incidents, a
headless chromium (Debian's), one PNG per page into docs/images/.

    .venv/bin/python docs/images/make_console_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from correlator.api.auth import hash_token  # noqa: E402
from tests.support.daemon import DaemonProcess, base_config, free_port  # noqa: E402

ADMIN = {"Authorization": "Bearer demo-admin"}
INCIDENTS = [
    {"title": "core-r1 unreachable: site A isolated", "host": "core-r1", "service": "backbone",
     "impact": 1, "urgency": 1, "category": "network"},
    {"title": "BGP session to transit-2 down", "host": "edge-r2", "service": "internet", "impact": 1, "urgency": 2},
    {"title": "Gi0/7 port flapping", "host": "acc-sw14", "service": "office-lan", "impact": 2, "urgency": 2},
    {"title": "UPS on battery", "host": "ups-dc1", "service": "datacentre", "impact": 2, "urgency": 3},
    {"title": "Disk /var 91% full", "host": "log-01", "service": "logging", "impact": 3, "urgency": 3},
]  # fmt: skip


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="console-shots-"))
    port = free_port()
    tokens = {"noc-alice": {"role": "operator", "sha256": hash_token("demo-op")},
              "noc-admin": {"role": "admin", "sha256": hash_token("demo-admin")}}  # fmt: skip
    d = DaemonProcess(work, base_config(work, port, http={"tokens": tokens}), port)
    d.start()
    try:
        for doc in INCIDENTS:
            status, _ = d.post_json("/api/v1/incidents", doc, ADMIN)
            assert status == 201
        d.post_json("/api/v1/incidents/2/assign", {"group": "network-l2", "assignee": "alice"}, ADMIN)
        d.post_json("/api/v1/incidents/2/ack", {"note": "transit provider ticket 4411 opened"}, ADMIN)
        d.post_json("/api/v1/incidents/3/assign", {"group": "campus"}, ADMIN)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--window-size=1400,620", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run"):  # fmt: skip
            opts.add_argument(arg)
        b = webdriver.Chrome(options=opts, service=webdriver.ChromeService("/usr/bin/chromedriver"))
        try:
            b.get(d.url + "/signin")
            b.find_element(By.ID, "token").send_keys("demo-op")
            b.find_element(By.ID, "signin").click()
            b.save_screenshot(str(REPO / "docs/images/console-incidents.png"))
            b.get(d.url + "/wall")
            b.save_screenshot(str(REPO / "docs/images/console-wall.png"))
        finally:
            b.quit()
    finally:
        d.stop()


if __name__ == "__main__":
    main()
