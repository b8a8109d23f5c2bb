"""`tuneforge data prepare`: real documents the test makes (a two-page PDF, a scanned one, a DOCX with a
table, an HTML page with navigation and a script, Markdown) become chunks holding their sentences,
not their page furniture, each with its source; the folder trains as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.core.cli import main
from tuneforge.core.data.formats import load_examples
from tuneforge.core.drafting.chunking import chunk_passages
from tuneforge.core.drafting.documents import Passage, extract
from tuneforge.core.errors import DataError

from .documents import write_pdf, write_sample_documents


@pytest.fixture
def documents(tmp_path) -> Path:
    return write_sample_documents(tmp_path / "docs")


def test_each_format_gives_its_sentences_with_their_source_and_not_its_furniture(documents):
    extraction = extract([documents])
    by_source = {passage.source: passage.text for passage in extraction.passages}
    assert by_source[f"{documents / 'guide.pdf'}#page=1"] == "The lighthouse keeper is Ada Marsh."
    assert by_source[f"{documents / 'guide.pdf'}#page=2"] == "The museum opens at ten."
    timetable = by_source[str(documents / "timetable.docx")]
    assert "Harbour timetable" in timetable and "leaves at noon on weekdays" in timetable
    assert "Saturday | 09:30" in timetable  # a table row, its cells kept together
    page = by_source[str(documents / "quillon.html")]
    assert "The door of the Quillon lighthouse is painted teal." in page and "It was built in 1887." in page
    assert not any(junk in page for junk in ("SCRIPT-JUNK", "NAV-JUNK", "FOOTER-JUNK", "color: red", "Shop"))
    assert "The bakery sells rye bread on Fridays." in by_source[str(documents / "notes.md")]
    assert (extraction.documents, extraction.pages) == (4, 5)
    assert extraction.skipped == [f"{documents / 'photo.png'}: not a document tuneforge reads (.pdf, .docx, .html, .htm, .md, .markdown, .txt)"]


def test_a_pdf_without_a_text_layer_is_named_with_its_pages(tmp_path):
    scan = write_pdf(tmp_path / "scan.pdf", [None, None])
    extraction = extract([scan])
    assert extraction.passages == [] and len(extraction.skipped) == 1
    assert extraction.skipped[0].startswith(f"{scan}: its 2 page(s) have no text layer (a scan?)") and "OCR" in extraction.skipped[0]


def test_chunks_fit_the_token_limit_break_at_sentences_and_overlap(smol_tokenizer):
    sentences = [f"Fact number {i} says that locker {i} opens with the code {i * 7919 % 10000:04d}." for i in range(60)]
    passage = Passage(" ".join(sentences[:30]) + "\n\n" + " ".join(sentences[30:]), "facts.txt")
    chunks = chunk_passages([passage], smol_tokenizer, chunk_tokens=160)
    assert len(chunks) > 3 and all(c.source == "facts.txt" for c in chunks)
    for chunk in chunks:
        assert len(smol_tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 160
        assert chunk.text.endswith(".")  # cut at a sentence boundary
    assert all(sentence in " ".join(c.text for c in chunks) for sentence in sentences)  # nothing lost
    overlapping = sum(chunks[i].text.split("\n\n")[0] in chunks[i - 1].text for i in range(1, len(chunks)))
    assert overlapping >= len(chunks) // 2  # the next chunk starts with the end of the one before


def test_data_prepare_writes_a_folder_that_trains_as_it_is(documents, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(documents), "--out", str(out), "--chunk-tokens", "64"]) == 0
    said = capsys.readouterr().out
    assert "skipped" in said and "photo.png" in said and f"--data {out / 'train.jsonl'}" in said
    chunks = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    assert {Path(c["source"].split("#")[0]).name for c in chunks} == {"guide.pdf", "timetable.docx", "quillon.html", "notes.md"}
    assert any(c["source"].endswith("guide.pdf#page=2") and "museum" in c["text"] for c in chunks)
    report = json.loads((out / "report.json").read_text())
    assert (report["documents"], report["pages"], report["chunks"]) == (4, 5, len(chunks))
    assert report["train_records"] + report["eval_records"] == len(chunks) and len(report["skipped"]) == 1
    loaded = load_examples(out / "train.jsonl")
    assert loaded.shape == "text" and not loaded.problems and len(loaded.examples) == report["train_records"]
    assert main(["data", "check", str(out / "train.jsonl")]) == 0


def test_nothing_readable_or_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    assert main(["data", "prepare", str(tmp_path), "--out", str(tmp_path / "out")]) == DataError.exit_code
    assert "no text in any document" in capsys.readouterr().err
    assert main(["data", "prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == DataError.exit_code
    assert f"{tmp_path / 'missing'}: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-made
