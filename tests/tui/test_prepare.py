"""Prepare and review in the app: documents and a generator in (tested first), chunks previewed, pairs
drafted with progress, one rejected and one edited in the review table, then handed to the Data step."""

from __future__ import annotations

import json

from textual.widgets import DataTable, Input

from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.data import DataScreen
from tuneforge.tui.screens.prepare import ChunkView, PrepareScreen
from tuneforge.tui.screens.review import EditPair, ReviewScreen

from ..core.documents import write_lockers
from ..core.servers import ScriptedServer, locker_pairs, passage_of
from .pilot import CPU_MACHINE, SIZE, text_of, wait_until


async def test_documents_become_reviewed_pairs_that_the_data_step_checks(home, default_model, tmp_path):
    documents = write_lockers(tmp_path / "lockers")
    out = tmp_path / "prepared"
    server = ScriptedServer(lambda request: locker_pairs(passage_of(request)))
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model = str(default_model)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(DataScreen())
            await pilot.click("#documents")
            await wait_until(pilot, lambda: isinstance(app.screen, PrepareScreen), what="the Prepare step")
            screen = app.screen
            screen.query_one("#sources", Input).value = str(documents)
            screen.query_one("#out", Input).value = str(out)
            screen.query_one("#generator", Input).value = server.url
            screen.query_one("#chunk-tokens", Input).value = "64"
            await pilot.click("#test")
            await wait_until(pilot, lambda: "answered under a JSON schema" in text_of(app, "#prepare-status"), what="the test")
            await pilot.press("ctrl+o")  # Preview chunks has its key
            await wait_until(pilot, lambda: screen.query_one("#chunks", DataTable).row_count > 3, what="the chunk preview")
            assert "lockers.md" in str(screen.query_one("#chunks", DataTable).get_row_at(0)[0])
            screen.query_one("#chunks", DataTable).focus()
            await pilot.press("enter")  # a chunk opens whole
            await wait_until(pilot, lambda: isinstance(app.screen, ChunkView), what="the chunk")
            assert app.screen.text == screen.chunks[0].text and "lockers.md" in app.screen.source
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="back to Prepare")
            await pilot.click("#prepare")
            await wait_until(pilot, lambda: screen.report is not None, what="the drafting")
            assert "kept" in text_of(app, "#prepare-status") and len(server.requests) == screen.report.chunks + 1  # +1: the test
            await pilot.click("#review")
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen), what="the review")
            review = app.screen
            table = review.query_one("#pairs", DataTable)
            assert table.row_count == screen.report.pairs_drafted
            assert "Locker 1 opens with the code 7919" in text_of(app, "#evidence")  # the evidence, in its chunk
            rejected = review.current()
            await pilot.press("r")
            await pilot.press("down")
            edited = review.current()
            await pilot.press("e")
            await wait_until(pilot, lambda: isinstance(app.screen, EditPair), what="the edit box")
            app.screen.query_one("#edit-answer", Input).value = "It is 5838."
            await pilot.click("#edit-save")
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen), what="back to the review")
            assert "✎" in str(table.get_row(edited.id)[0]) and "rejected" in str(table.get_row(rejected.id)[0])
            review.query_one("#filter", Input).value = "nothing-like-this"
            await pilot.pause()
            assert table.row_count == 0
            review.query_one("#filter", Input).value = "lockers"
            await pilot.pause()
            # Back keeps the verdicts: the review opened again shows them, and counts them reviewed.
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, PrepareScreen), what="back to Prepare")
            await pilot.click("#review")
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen is not review, what="the review again")
            table = app.screen.query_one("#pairs", DataTable)
            assert "2 reviewed" in text_of(app, "#review-status")
            assert "✎" in str(table.get_row(edited.id)[0]) and "rejected" in str(table.get_row(rejected.id)[0])
            await pilot.click("#use")
            await wait_until(pilot, lambda: isinstance(app.screen, DataScreen) and "no problems" in text_of(app, "#data-status"),
                             what="the Data step's check")
            assert app.session.data == str(out / "train.jsonl") and app.session.eval_data == str(out / "eval.jsonl")
    finally:
        server.stop()
    trained = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    held_out = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    messages = [r["messages"] for r in trained + held_out]
    assert [{"role": "user", "content": rejected.question}, {"role": "assistant", "content": rejected.answer}] not in messages
    assert [{"role": "user", "content": edited.question}, {"role": "assistant", "content": "It is 5838."}] in messages
