"""The demo app in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
search, pick three items, get recommendations, add a new item; what the page shows is checked against the
engine, and a screenshot is saved under the test's tmp folder.

`make test` installs the browser from Debian packages where it is missing; without it this test skips.
"""

from __future__ import annotations

import socket

import pytest
import torch
from app_fixtures import ITEM_IDS, NEW_FILM, build_app_run

from hf_simcit.app.browser import find_chromium

CHROMIUM, CHROMEDRIVER, MISSING = find_chromium()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "chromium is installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def served_app(tmp_path):
    """The app on the tiny run, served in this process on a free port: (engine, url)."""
    pytest.importorskip("gradio")
    from hf_simcit.app import DemoEngine
    from hf_simcit.app.ui import CSS, _theme, build_app

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = DemoEngine.load(build_app_run(tmp_path / "run"))
    app = build_app(engine)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                           theme=_theme(), css=CSS)
    yield engine, url
    app.close()
    torch.set_num_threads(before)


def test_search_pick_recommend_and_add_an_item_in_chromium(served_app, tmp_path):
    from hf_simcit.app.browser import AppPage, chromium_driver

    engine, url = served_app
    with chromium_driver(width=1280, height=1200) as driver:
        page = AppPage(driver, url).open()
        assert "16 items, SIDs of 3 levels" in driver.find_element("css selector", "body").text
        assert page.search("star wars") == ["Star Wars (1977). Genres: Action, Adventure, Sci-Fi."]
        page.pick("Star Wars")
        assert page.search("alien") == ["Alien (1979). Genres: Horror, Sci-Fi.",
                                         "Aliens (1986). Genres: Action, Sci-Fi, Thriller, War."]
        page.pick("Aliens (1986)")
        page.search("toy")
        picked = page.pick("Toy Story")
        assert picked == [f"{engine.labels[i]} {engine.sid(i)}" for i in ("m0", "m12", "m3")]

        rows, seconds = page.recommend()
        expected = engine.recommend(["m0", "m12", "m3"], k=10)
        assert len(rows) == 10 and seconds < 30
        for row, rec in zip(rows, expected):
            number, item, score, sid, shared = row
            assert item == f"{rec.label} ({rec.item_id})" and sid == rec.sid
            assert float(score) == pytest.approx(rec.score, abs=1e-3)
            for pick, levels in rec.shared:  # "2 levels: Alien (1979); 1 level: Star Wars (1977), ..."
                group = next(g for g in shared.split("; ") if g.startswith(f"{levels} level"))
                assert engine.labels[pick].split(". ")[0] in group
            if not rec.shared:
                assert shared == "-"
        assert {row[1].rsplit("(", 1)[1].rstrip(")") for row in rows} <= set(ITEM_IDS) - {"m0", "m12", "m3"}

        panel = page.add_item(NEW_FILM)
        placed = engine.add_item(NEW_FILM, picks=["m0", "m12", "m3"], k=10)
        assert f"SID of the new item: {placed.sid} (from its text; absent: cf)" in panel
        for neighbour in placed.neighbours:
            assert f"{neighbour.label} ({neighbour.item_id}) {neighbour.similarity:.3f}" in panel
        verdict = driver.find_element("css selector", "#verdict").text
        if placed.position is None:
            assert verdict.startswith("Not in the top 10 for the current picks: log-prob")
        else:
            assert verdict.startswith(f"Recommended for the current picks: position {placed.position} of 10")
        shot = page.screenshot(tmp_path / "app.png")
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 20_000
