"""The Gradio layout of the demo app; every answer comes from :class:`~hf_simcit.app.engine.DemoEngine`.

Element ids (``elem_id``) are part of the interface: the browser test and the benchmark
(:mod:`hf_simcit.app.browser`) find the page's parts by them.
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Sequence
from typing import Any

from ..errors import SimCITInputError
from .engine import ColdStartResult, DemoEngine, Recommendation, short_label

RECOMMENDATION_HEADERS = ["#", "item (id)", "score (log-prob)", "SID", "shares a SID prefix with"]
MAX_PICKS = 20  # the demo recipes train on histories of at most 20 items
CSS = """
.rec-table {width: 100%; border-collapse: collapse; font-size: 0.9em}
.rec-table th, .rec-table td {border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left;
                              vertical-align: top}
.rec-table code {white-space: nowrap}
.rec-table .new-item {background: #fff3cd}
"""


def _theme():
    """The default theme with system fonts: the page loads nothing from outside (a Space, or offline)."""
    import gradio as gr

    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


def picks_html(engine: DemoEngine, picks: Sequence[str]) -> str:
    if not picks:
        return "<p id='no-picks'>No picks yet: search, select an item, press <b>Add to picks</b>.</p>"
    rows = "".join(f"<li data-item-id='{html.escape(p)}'>{html.escape(engine.labels[p])} "
                   f"<code>{html.escape(engine.sid(p))}</code></li>" for p in picks)
    return f"<ol class='picks'>{rows}</ol>"


def shared_text(engine: DemoEngine, rec: Recommendation) -> str:
    """``"2 levels: Empire Strikes Back, The (1980); 1 level: Star Wars (1977)"``, longest prefix first."""
    by_level: dict[int, list[str]] = {}
    for pick, levels in rec.shared:
        by_level.setdefault(levels, []).append(short_label(engine.labels[pick]))
    return "; ".join(f"{n} level{'s' if n > 1 else ''}: {', '.join(names)}"
                     for n, names in sorted(by_level.items(), reverse=True)) or "-"


def recommendations_html(engine: DemoEngine, recs: Sequence[Recommendation], new_item: str | None = None) -> str:
    """The recommendations as an HTML table (``new_item``: the id of a cold-start item, highlighted)."""
    if not recs:
        return "<p>No recommendations yet: pick items, press <b>Recommend</b>.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in RECOMMENDATION_HEADERS)
    rows = []
    for n, r in enumerate(recs):
        css = " class='new-item'" if r.item_id == new_item else ""
        rows.append(f"<tr{css} data-item-id='{html.escape(r.item_id)}'><td>{n + 1}</td>"
                    f"<td>{html.escape(r.label)} ({html.escape(r.item_id)})</td><td>{r.score:.3f}</td>"
                    f"<td><code>{html.escape(r.sid)}</code></td><td>{html.escape(shared_text(engine, r))}</td></tr>")
    return f"<table class='rec-table'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def cold_start_html(engine: DemoEngine, result: ColdStartResult, picks: Sequence[str]) -> str:
    """The new item's SID, its nearest warm items, and the verdict for the current picks."""
    absent = ", ".join(m for m in engine.modalities if m not in result.modalities) or "none"
    parts = [f"<p><b>SID of the new item:</b> <code>{html.escape(result.sid)}</code> (from its "
             f"{html.escape(', '.join(result.modalities))}; absent: {html.escape(absent)})</p>",
             "<p><b>Nearest catalogue items</b> (cosine of the quantizer's fused embeddings)</p>",
             "<table class='rec-table'><thead><tr><th>item (id)</th><th>similarity</th><th>SID</th>"
             "<th>shared SID levels</th></tr></thead><tbody>"]
    parts += [f"<tr><td>{html.escape(n.label)} ({html.escape(n.item_id)})</td><td>{n.similarity:.3f}</td>"
              f"<td><code>{html.escape(n.sid)}</code></td><td>{n.shared_prefix}</td></tr>" for n in result.neighbours]
    parts.append("</tbody></table>")
    if not picks:
        parts.append("<p id='verdict'>Pick items to see whether the generator would recommend the new item.</p>")
    elif result.position is not None:
        parts.append(f"<p id='verdict'><b>Recommended</b> for the current picks: position {result.position} of "
                     f"{result.k} (log-prob {result.score:.3f}).</p>")
    else:
        parts.append(f"<p id='verdict'><b>Not in the top {result.k}</b> for the current picks: log-prob "
                     f"{result.score:.3f}; the {result.k}th recommendation has {result.kth_score:.3f}.</p>")
    if result.position is not None:  # otherwise the list is the one above
        new_id = result.recommendations[result.position - 1].item_id
        parts += ["<p>Top recommendations with the new item in the catalogue (highlighted):</p>",
                  recommendations_html(engine, result.recommendations, new_item=new_id)]
    return "\n".join(parts)


def build_app(engine: DemoEngine) -> Any:
    """The ``gr.Blocks`` app: search + picks, recommendations, a new item (cold start)."""
    import gradio as gr

    has_geo = "geo" in engine.modalities

    def search(query: str):
        found = engine.search(query or "")
        message = f"{len(found)} match(es) for {query!r}" if found else f"no item matches {query!r}"
        return gr.update(choices=[(label, item) for item, label in found], value=None), message

    def add_pick(selected: str | None, picks: list[str]):
        if not selected:
            return picks, picks_html(engine, picks), "select a search result first"
        if selected in picks:
            return picks, picks_html(engine, picks), f"{engine.labels[selected]} is already picked"
        if len(picks) >= MAX_PICKS:
            return picks, picks_html(engine, picks), f"at most {MAX_PICKS} picks"
        picks = [*picks, selected]
        return picks, picks_html(engine, picks), f"picked {engine.labels[selected]}"

    def clear_picks():
        return [], picks_html(engine, []), "picks cleared", recommendations_html(engine, [])

    def recommend(picks: list[str], k: float):
        try:
            recs = engine.recommend(picks, int(k))
        except SimCITInputError as err:
            return recommendations_html(engine, []), str(err)
        return recommendations_html(engine, recs), f"top {len(recs)} for {len(picks)} pick(s)"

    def add_item(text: str, latitude: float | None, longitude: float | None, picks: list[str], k: float):
        try:
            result = engine.add_item(text, latitude=latitude, longitude=longitude, picks=picks, k=int(k))
        except SimCITInputError as err:
            return f"<p><b>Cannot add the item:</b> {html.escape(str(err))}</p>", str(err)
        return cold_start_html(engine, result, picks), f"new item placed with SID `{result.sid}`"

    with gr.Blocks(title="hf-simcit recommender") as app:
        gr.Markdown(f"## hf-simcit: generative recommendation with semantic IDs\n{engine.describe()}")
        picks = gr.State([])
        status = gr.Markdown("", elem_id="status")
        with gr.Row():
            with gr.Column(scale=1):
                query = gr.Textbox(label="Search the catalogue by title", elem_id="search",
                                   placeholder="e.g. star wars")
                search_button = gr.Button("Search", elem_id="search-button")
                results = gr.Radio(label="Matches", choices=[], elem_id="search-results")
                with gr.Row():
                    pick_button = gr.Button("Add to picks", variant="primary", elem_id="pick-button")
                    clear_button = gr.Button("Clear picks", elem_id="clear-button")
                gr.Markdown("**Picked items** (oldest first)")
                picked = gr.HTML(picks_html(engine, []), elem_id="picks")
            with gr.Column(scale=2):
                k = gr.Slider(1, min(50, len(engine.item_ids)), value=min(10, len(engine.item_ids)), step=1,
                              label="k (items to recommend)", elem_id="k")
                recommend_button = gr.Button("Recommend", variant="primary", elem_id="recommend-button")
                gr.Markdown("**Recommendations** (picked items are not recommended back)")
                table = gr.HTML(recommendations_html(engine, []), elem_id="recommendations")
        gr.Markdown("### A new item (cold start, no retraining)")
        with gr.Row():
            new_text = gr.Textbox(label="New item's text", elem_id="new-text", lines=2,
                                  placeholder="Title (year). Genres: ...")
            latitude = gr.Number(label="latitude", visible=has_geo, elem_id="new-latitude")
            longitude = gr.Number(label="longitude", visible=has_geo, elem_id="new-longitude")
        add_button = gr.Button("Add new item", elem_id="add-item-button")
        cold_start = gr.HTML("", elem_id="cold-start")

        search_button.click(search, query, [results, status])
        query.submit(search, query, [results, status])
        pick_button.click(add_pick, [results, picks], [picks, picked, status])
        clear_button.click(clear_picks, None, [picks, picked, status, table])
        recommend_button.click(recommend, [picks, k], [table, status])
        add_button.click(add_item, [new_text, latitude, longitude, picks, k], [cold_start, status])

        def recommend_api(item_ids: list[str], k: int = 10) -> list[dict]:
            """Top-k recommendations (item_id, label, score, sid, shared) after item_ids, oldest first."""
            return [dataclasses.asdict(r) for r in engine.recommend(item_ids, int(k))]

        gr.api(recommend_api, api_name="recommendations")
    return app


def launch(source: str, *, repo_ids: dict[str, str] | None = None, server_name: str | None = None,
           server_port: int | None = None, prevent_thread_lock: bool = False, device: str | None = None):
    """Load ``source`` (run folder or Hub repo id; ``repo_ids`` names the three repos explicitly, as a
    Space does) and serve the app; returns what ``gr.Blocks.launch`` returns."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    engine = DemoEngine.from_hub(source, repo_ids=repo_ids, device=device) if repo_ids else \
        DemoEngine.load(source, device=device)
    app = build_app(engine)
    return app, app.launch(server_name=server_name, server_port=server_port, theme=_theme(), css=CSS,
                           prevent_thread_lock=prevent_thread_lock, footer_links=[])
