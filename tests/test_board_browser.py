"""The leaderboard page in a real headless browser (Debian's chromium + chromedriver, driven by selenium).

Loads ``index.html`` from a file URL, checks the tables and plots, clicks headings and checks the
order of the rows; keeps a screenshot under ``test-artifacts/`` (git-ignored). Needs
``apt-get install chromium chromium-driver`` and ``pip install selenium`` (the test extra).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _board_data import board_data, fresh_board
from defectbench import leaderboard as L

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e .[test])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(arg)
    # an explicit driver path: selenium never tries to download a driver or a browser
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    datasets, results = board_data(tmp_path_factory)
    base = tmp_path_factory.mktemp("browser")
    root = fresh_board(base, results)
    board = L.collect(root, datasets)
    assert board.rejected == []
    L.write(board)
    return root / "index.html", board


def _column(driver, table, key):
    from selenium.webdriver.common.by import By

    return [td.get_attribute("data-value") for td in table.find_elements(By.CSS_SELECTOR, f'tbody td[data-key="{key}"]')]


def test_page_tables_plots_and_sorting(browser, page):
    from selenium.webdriver.common.by import By

    index, board = page
    browser.get(index.as_uri())
    tables = browser.find_elements(By.CSS_SELECTOR, "table.board")
    assert len(tables) == 1
    table = tables[0]
    assert table.get_attribute("data-task") == "fma-clicks"
    headings = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headings[:4] == ["rank", "submission", "model", "F1 % [95 % CI]"]
    assert {"parameters", "segments/s", "device", "plots"} <= set(headings)
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert sorted(r.get_attribute("data-submission") for r in rows) == sorted(e.name for e in board.entries)
    # every row shows its recomputed F1 and interval, as the board computed them
    for e in board.entries:
        cell = table.find_element(By.CSS_SELECTOR, f'tr[data-submission="{e.name}"] td[data-key="f1"]')
        assert cell.text.startswith(f"{e.value:.2f}") and f"[{e.interval[0]:.2f}, {e.interval[1]:.2f}]" in cell.text
    # the plots load (relative links resolve from the page's folder)
    widths = browser.execute_script("return Array.from(document.querySelectorAll('img.plot')).map(i => i.naturalWidth)")
    assert len(widths) == len(board.entries) and all(w > 0 for w in widths)

    f1 = table.find_element(By.CSS_SELECTOR, 'th[data-key="f1"]')
    f1.click()
    values = [float(v) for v in _column(browser, table, "f1")]
    assert values == sorted(values) and len(set(values)) > 1
    assert f1.get_attribute("aria-sort") == "ascending"
    f1.click()
    values = [float(v) for v in _column(browser, table, "f1")]
    assert values == sorted(values, reverse=True)
    assert f1.get_attribute("aria-sort") == "descending"
    # text columns sort too, and the row's other cells move with it
    table.find_element(By.CSS_SELECTOR, 'th[data-key="submission"]').click()
    names = _column(browser, table, "submission")
    assert names == sorted(names)
    order = [r.get_attribute("data-submission") for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert order == names
    by_name = {e.name: e for e in board.entries}
    assert [float(v) for v in _column(browser, table, "f1")] == pytest.approx([by_name[n].value for n in names])
    assert f1.get_attribute("aria-sort") is None

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG"
