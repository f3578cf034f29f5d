"""The dashboard in a real headless Chromium (Debian's, through its chromedriver; nothing
downloaded): log in, watch a scan made by a real `qrgate run` arrive live, watch the gate
go offline when its broker connection is cut, search a Vietnamese name without its
marks, export a CSV and open it, and look at the pages on a phone's width.

Screenshots of each page go to $QRGATE_SCREENSHOTS, or else to a folder under pytest's
temporary folder named for this run (printed at the start).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from monitor.intake.enrollment import EnrolledKey
from monitor.storage.store import Store as MonitorStore
from mqtt.signing import EventSigner, public_text
from scanner.demo.scenario import background, card_frame
from scanner.state.store import AllowEntry, Store
from tests.support.broker import Mosquitto, free_port
from tests.support.dashboard import PASSWORD, monitor_with_dashboard, seed
from tests.support.gate import wait_until
from tests.support.gateproc import GateProcess, badge_gate_config, write_config

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Offline, a fresh profile, nothing phoning home: otherwise Chromium hangs here.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--window-size=1280,900", "--lang=vi",
)  # fmt: skip
WAIT_S = 30.0


@dataclass
class Centre:
    url: str
    db: str
    broker: Mosquitto
    folder: Path
    monitor: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("QRGATE_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are not installed: run scripts/bootstrap dev")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="qrgate-chromium-")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "intl.accept_languages": "vi"}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    """`qrgate monitor --http` as deployed, a private broker, a store with accounts."""
    folder = tmp_path_factory.mktemp("centre")
    broker = Mosquitto(folder / "broker").start()
    db = f"sqlite:///{folder / 'centre.db'}"
    seed(db)
    port = free_port()
    monitor = monitor_with_dashboard(
        broker.url, db, port, "centre-browser", folder / "monitor.log", "--stale-after", "60"
    )
    try:
        yield Centre(f"http://127.0.0.1:{port}", db, broker, folder, monitor)
    finally:
        monitor.terminate()
        monitor.wait(15)
        broker.kill()


def shot(browser: Any, folder: Path, name: str) -> None:
    browser.save_screenshot(str(folder / f"{name}.png"))


def wait_for(browser: Any, condition: Callable[[Any], Any], timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)


def css(selector: str) -> Callable[[Any], Any]:
    from selenium.webdriver.common.by import By

    def found(browser: Any) -> Any:
        elements = browser.find_elements(By.CSS_SELECTOR, selector)
        return elements[0] if elements else False

    return found


@pytest.fixture(scope="module")
def logged_in(browser: Any, centre: Centre, screenshots: Path) -> Any:
    from selenium.webdriver.common.by import By

    browser.get(f"{centre.url}/events")
    assert "/login" in browser.current_url  # nothing before login
    shot(browser, screenshots, "01-login")
    browser.find_element(By.NAME, "name").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(browser, css("#event-rows[data-live]"))
    assert browser.current_url == f"{centre.url}/events"
    return browser


def gate_kit(folder: Path, port: int) -> Path:
    """A gate with a replayed camera showing two allowlisted badges, mock pins."""
    frames = folder / "camera"
    frames.mkdir(parents=True)
    scene = background((640, 480))
    shown = [card_frame(scene, b"B-1", tilt=0.0)] * 3 + [scene] * 20
    shown += [card_frame(scene, b"B-2", tilt=0.0)] * 3 + [scene] * 2
    for number, frame in enumerate(shown):
        Image.fromarray(frame).save(frames / f"{number:04d}.png", compress_level=1)
    config = badge_gate_config(frames, folder, port)
    with Store.open(config.store.path) as store:
        store.allowlist.add_all(
            [AllowEntry("B-1", name="Phạm Thị Lụa"), AllowEntry("B-2", name="Hoàng Đức Minh")]
        )
    return write_config(config, folder / "gate.toml")


def enroll_a_key(centre: Centre, site: str, gate: str) -> str:
    """A gate's public key enrolled in the centre's store, as `qrgate gates enroll` does."""
    signer = EventSigner.load_or_create(centre.folder / f"{gate}-key.pem")
    store = MonitorStore(centre.db)
    store.enroll(EnrolledKey.make(site, gate, public_text(signer.public), 0))
    store.close()
    return signer.kid


def test_a_real_gate_scan_shows_live_then_the_gate_goes_offline(
    logged_in: Any, centre: Centre, screenshots: Path
) -> None:
    browser = logged_in
    shot(browser, screenshots, "02-events-before")
    gate = GateProcess(gate_kit(centre.folder / "gate", centre.broker.port))
    try:
        row = wait_for(browser, css('#event-rows tr[data-id] a[href="/people/B-1"]'), 45)
        assert row.text == "B-1"
        wait_for(browser, lambda b: "Phạm Thị Lụa" in b.find_element("id", "event-rows").text)
        shot(browser, screenshots, "03-events-live")
        kid = enroll_a_key(centre, "f1", "in-1")
        browser.get(f"{centre.url}/gates")
        ours = 'article[data-gate="f1/in-1"]'
        enrolled = wait_for(browser, css(f'{ours} p.trust[data-trust="verified"]'))
        assert enrolled.text.startswith("Đã xác thực: sự kiện của cổng có chữ ký")
        assert "Sự kiện lưu trước đó, chưa xác thực: 3." in enrolled.text
        assert browser.find_element("css selector", f"{ours} p.kid code").text == kid
        card = wait_for(browser, css('article[data-gate="factory-1/gate-1"][data-state="online"]'))
        assert "trực tuyến" in card.text.lower()
        trust = card.find_element("css selector", 'p.trust[data-trust="not_enrolled"]')
        assert trust.text.startswith("Chưa xác thực: cổng chưa đăng ký khóa")
        assert "qrgate gates enroll factory-1/gate-1 KEY" in card.text  # an admin is told how
        shot(browser, screenshots, "04-gates-online")
        gate.kill()  # its broker connection is cut: the broker publishes its last will
        offline = wait_for(
            browser, css('article[data-gate="factory-1/gate-1"][data-state="offline"]')
        )
        assert "mất kết nối" in offline.text.lower()
        shot(browser, screenshots, "05-gates-offline")
    finally:
        gate.close()


def test_search_a_vietnamese_name_without_diacritics(
    logged_in: Any, centre: Centre, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser = logged_in
    browser.get(f"{centre.url}/people")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("nguyen van an")
    box.submit()
    link = wait_for(browser, css('#found a[href="/people/W-1"]'))
    assert "Nguyễn Văn An" in browser.find_element(By.ID, "found").text
    shot(browser, screenshots, "06-people-search")
    link.click()
    assert "Nguyễn Văn An" in wait_for(browser, css("main h1")).text
    browser.get(f"{centre.url}/people/W-1?from=2026-03-02T00:00&to=2026-03-03T00:00")
    stays = wait_for(browser, css("#stays")).text
    assert "02/03/2026 08:00:00" in stays  # 01:00 UTC, shown in the site's zone
    shot(browser, screenshots, "07-person")


def test_export_a_csv_and_open_it(logged_in: Any, centre: Centre, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    browser = logged_in
    browser.get(f"{centre.url}/events?site=f1")
    badge = wait_for(browser, css("#event-rows span.badge.cert"))
    assert badge.text == "tiêm chủng · VN"  # W-2's passage, paired with a certificate
    assert badge.value_of_css_property("background-color") == "rgba(224, 234, 255, 1)"
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#events th")]
    assert "CHỨNG NHẬN Y TẾ" in headers  # upper case by the style sheet
    shot(browser, screenshots, "08-events-filtered")
    browser.find_element(By.CSS_SELECTOR, 'a[href^="/events.csv"]').click()
    downloads: Path = browser.downloads
    assert wait_until((downloads / "events.csv").exists, 15), list(downloads.iterdir())
    body = (downloads / "events.csv").read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert "Nguyễn Văn An" in text
    assert "Đặng Thị Bình" in text
    assert "Lê Văn C" not in text  # site f2 was filtered out
    assert ",W-2,Đặng Thị Bình,vaccination,VN," in text


def test_pages_fit_a_phone(logged_in: Any, centre: Centre, screenshots: Path) -> None:
    browser = logged_in
    browser.set_window_size(390, 844)
    try:
        for number, page in enumerate(("gates", "events", "people/W-1", "onsite"), start=9):
            browser.get(f"{centre.url}/{page}")
            wait_for(browser, css("main h1"))
            width = browser.execute_script("return document.documentElement.scrollWidth")
            viewport = browser.execute_script("return window.innerWidth")
            assert width <= viewport, f"{page} is {width} px wide on a {viewport} px screen"
            shot(browser, screenshots, f"{number:02d}-phone-{page.replace('/', '-')}")
    finally:
        browser.set_window_size(1280, 900)


def test_audit_log_shows_the_look_ups(logged_in: Any, centre: Centre, screenshots: Path) -> None:
    browser = logged_in
    browser.get(f"{centre.url}/audit")
    text = wait_for(browser, css("#report")).text
    assert "person_search" in text
    assert "export" in text
    shot(browser, screenshots, "13-audit")
