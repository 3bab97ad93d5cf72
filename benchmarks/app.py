"""Demo app benchmark: how fast the app answers a pick of three items, measured in a real browser.

Serves ``hf-simcit app`` on a finished run (default the ``make demo`` run, ``runs/ml-100k``), drives it in
headless Chromium (Debian's chromium + chromium-driver, Selenium; :mod:`hf_simcit.app.browser`) and, for
``--repeats`` different triples of items (the first Star Wars, Empire Strikes Back, Return of the Jedi, then
seeded random ones): clears the picks, searches and picks the three, presses Recommend and times the click
until the table shows the answer. The same triples through ``DemoEngine.recommend`` alone (no browser, no
HTTP) give the engine's share. Then a new item is added (cold start) and the page is saved as a screenshot.

    nice -n 5 .venv/bin/python benchmarks/app.py                  # appends to RESULTS.md, writes results/app.json
    .venv/bin/python benchmarks/app.py --repeats 3 --no-write     # quick look, nothing written under benchmarks/

Writes ``benchmarks/results/app.json``: ``{"date", "browser", "recommend_latency_s": {"median", "max"},
"screens": [...], ...}`` (latencies in the browser, click to answer) and the screenshot(s) beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import reporting
import torch

from hf_simcit.app import DemoEngine
from hf_simcit.app.browser import AppPage, chromium_driver, chromium_version, find_chromium
from hf_simcit.app.ui import CSS, _theme, build_app

FIRST_PICKS = ("star wars", "empire strikes back", "return of the jedi")
NEW_ITEM = "Star Trek: The Next Voyage (1998). Genres: Action, Adventure, Sci-Fi."
SCREEN = "app-ml-100k.png"


def triples(engine: DemoEngine, repeats: int, seed: int) -> list[list[str]]:
    """The Star Wars trilogy first (where the catalogue has it), then seeded random distinct triples."""
    first = [found[0][0] for query in FIRST_PICKS if (found := engine.search(query))]
    out = [first] if len(first) == 3 else []
    rng = np.random.default_rng(seed)
    while len(out) < repeats:
        out.append([engine.item_ids[i] for i in rng.choice(len(engine.item_ids), 3, replace=False)])
    return out[:repeats]


def result_sid(sid_line: str) -> str:
    """``<a_29><b_22><c_2><d_0>`` of ``"SID of the new item: <a_29>... (from its text; ...)"``."""
    return sid_line.split(": ", 1)[1].split(" (", 1)[0]


def shrink(path: Path, width: int = 1100) -> None:
    """Downscale a screenshot to ``width`` pixels (README-sized PNG)."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=128).save(path, optimize=True)  # a page of text: 128 colours are plenty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/ml-100k", help="run folder or Hub repo id ORG/NAME")
    parser.add_argument("--repeats", type=int, default=10, help="triples of picks to time")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the app (2 shared cores: 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; write nothing under benchmarks/")
    args = parser.parse_args()
    chromium, _, missing = find_chromium()
    if missing:
        sys.exit(f"benchmarks/app.py: {missing}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    engine = DemoEngine.load(args.run)
    load_s = time.perf_counter() - start
    picks = triples(engine, args.repeats, args.seed)
    engine.recommend(picks[0], args.k)  # warm-up (first call builds caches)
    engine_s = []
    for triple in picks:
        start = time.perf_counter()
        engine.recommend(triple, args.k)
        engine_s.append(time.perf_counter() - start)

    app = build_app(engine)
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                           theme=_theme(), css=CSS)
    browser_s, shown = [], []
    screens_dir = reporting.RESULTS_DIR if not args.no_write else Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        with chromium_driver(width=1300, height=1100) as driver:
            page = AppPage(driver, url).open()
            for triple in [*picks[:1], *picks]:  # the first round warms the browser and the queue up
                if page.picks():
                    page.clear_picks()
                for item in triple:
                    page.search(item)  # an exact item id finds its item
                    page.pick(engine.labels[item])
                rows, seconds = page.recommend()
                browser_s.append(seconds)
                shown.append(len(rows))
            browser_s, shown = browser_s[1:], shown[1:]
            page.clear_picks()  # the screenshot: picks found by their titles, as a person would
            for query, item in zip(FIRST_PICKS, picks[0]):
                page.search(query if engine.search(query)[:1] == [(item, engine.labels[item])] else item)
                page.pick(engine.labels[item])
            page.recommend()
            start = time.perf_counter()
            panel = page.add_item(NEW_ITEM)
            cold_start_s = time.perf_counter() - start
            driver.set_window_size(1300, 1100)
            screen = page.screenshot(screens_dir / SCREEN)
    finally:
        app.close()
    shrink(screen)
    sid_line = next(line for line in panel.splitlines() if line.startswith("SID of the new item"))
    verdict = next(line for line in panel.splitlines() if line.startswith(("Recommended", "Not in the top")))
    browser = chromium_version(chromium)
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "browser": browser,
        "recommend_latency_s": {"median": round(statistics.median(browser_s), 4), "max": round(max(browser_s), 4)},
        "screens": [SCREEN],
        "run": str(args.run),
        "catalogue_items": len(engine.item_ids),
        "k": args.k,
        "picks_per_request": 3,
        "requests": len(browser_s),
        "engine_latency_s": {"median": round(statistics.median(engine_s), 4), "max": round(max(engine_s), 4)},
        "load_s": round(load_s, 2),
        "cold_start_s": round(cold_start_s, 3),
        "cold_start": {"text": NEW_ITEM, "sid_line": sid_line, "verdict": verdict},
        "torch_threads": torch.get_num_threads(),
    }
    table = "\n".join([
        "| what | median s | max s | n |",
        "|---|---|---|---|",
        f"| app answers 3 picks, k={args.k} (browser: click Recommend -> table shown) | "
        f"{result['recommend_latency_s']['median']:.3f} | {result['recommend_latency_s']['max']:.3f} | {len(browser_s)} |",
        f"| same, `DemoEngine.recommend` alone (no browser, no HTTP) | {result['engine_latency_s']['median']:.3f} | "
        f"{result['engine_latency_s']['max']:.3f} | {len(engine_s)} |",
        f"| add a new item (text -> SID, 5 neighbours, verdict; first call loads MiniLM) | {cold_start_s:.3f} | - | 1 |",
        f"| load the run (recommender, quantizer, SIDs, item table, fused embeddings) | {load_s:.2f} | - | 1 |",
    ])
    print(f"{browser}; run {args.run}: {len(engine.item_ids):,} items; every request showed {set(shown)} rows")
    print(table)
    print(f"cold start: {sid_line} / {verdict}")
    if args.no_write:
        print(f"screenshot (not kept under benchmarks/): {screen}")
        return
    reporting.write_json("app", result)
    command = reporting.command_line("nice -n 5 .venv/bin/python benchmarks/app.py")
    load = os.getloadavg()
    section = (
        f"\n## Demo app: answer time in a real browser ({reporting.utc_minute()})\n\n"
        f"Run `{args.run}` ({len(engine.item_ids):,} items, the `make demo` run), {browser} headless via Selenium "
        f"on the same machine, torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} CPU cores shared with other jobs (load average {load[0]:.1f} at the end). "
        f"{len(picks)} different triples of picks (the Star Wars trilogy, then seeded random ones), each: clear, "
        f"search + pick three, press Recommend; timed from the click until the table shows the answer. "
        f"Screenshot: `benchmarks/results/{SCREEN}`; JSON: `benchmarks/results/app.json`.\n\n"
        f"Command: `{command}`\n\n{table}\n\nCold start ({NEW_ITEM}): SID `{result_sid(sid_line)}`; "
        f"{verdict}\n"
    )
    reporting.append_results(section)


if __name__ == "__main__":
    main()
