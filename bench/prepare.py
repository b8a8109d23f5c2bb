"""Pages per second extracting documents for `tuneforge data prepare`, per format, next to a baseline.

Each format gets the same generated text, 40 sentences to a page: a PDF of N pages (written here,
one text line per sentence), a DOCX and an HTML page with N sections of a heading, paragraphs and a
table, Markdown and TXT. The baseline is reading the TXT file and splitting its paragraphs: what
extraction costs over having the text already. Chunking with the default model's tokenizer is timed
on all of it. (Drafting pairs with a generator is not built yet; its rows come with it.)

    python bench/prepare.py [--pages 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' document writers
from tests.core.documents import write_pdf

SENTENCES_PER_PAGE = 40


def page_sentences(page: int) -> list[str]:
    return [f"On page {page}, fact {i} says locker {page * 100 + i} opens with code {(page * 7919 + i) % 10000:04d}."
            for i in range(SENTENCES_PER_PAGE)]


def write_docx(path: Path, pages: int) -> None:
    import docx

    document = docx.Document()
    for page in range(pages):
        sentences = page_sentences(page)
        document.add_heading(f"Section {page}", level=2)
        for start in range(0, SENTENCES_PER_PAGE - 4, 9):
            document.add_paragraph(" ".join(sentences[start:start + 9]))
        table = document.add_table(rows=4, cols=1)
        for row, sentence in zip(table.rows, sentences[-4:], strict=True):
            row.cells[0].text = sentence
    document.save(path)


def write_html(path: Path, pages: int) -> None:
    sections = []
    for page in range(pages):
        sentences = page_sentences(page)
        paragraphs = "".join(f"<p>{' '.join(sentences[i:i + 9])}</p>" for i in range(0, SENTENCES_PER_PAGE - 4, 9))
        rows = "".join(f"<tr><td>{sentence}</td></tr>" for sentence in sentences[-4:])
        sections.append(f"<section><h2>Section {page}</h2>{paragraphs}<table>{rows}</table></section>")
    path.write_text(f"<html><head><script>var x = 1;</script></head><body><nav>menu</nav><main>{''.join(sections)}</main>"
                    "<footer>footer</footer></body></html>", encoding="utf-8")


def write_text(path: Path, pages: int, markdown: bool) -> None:
    blocks = [(f"## Section {page}\n\n" if markdown else "") + " ".join(page_sentences(page)) for page in range(pages)]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def timed(work, *args):
    started = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()

    from tuneforge.core.data.chunking import chunk_passages
    from tuneforge.core.data.documents import extract
    from tuneforge.core.models import resolve_model
    from tuneforge.core.train.setup import load_tokenizer

    tokenizer = load_tokenizer(resolve_model("default").path)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {"pdf": folder / "doc.pdf", "docx": folder / "doc.docx", "html": folder / "doc.html",
                 "markdown": folder / "doc.md", "txt": folder / "doc.txt"}
        write_pdf(files["pdf"], [page_sentences(page) for page in range(args.pages)])
        write_docx(files["docx"], args.pages)
        write_html(files["html"], args.pages)
        write_text(files["markdown"], args.pages, markdown=True)
        write_text(files["txt"], args.pages, markdown=False)
        baseline, _ = timed(lambda path: path.read_text().split("\n\n"), files["txt"])
        rows.append(("txt read + split (baseline)", baseline, None))
        passages = []
        for name, path in files.items():
            seconds, extraction = timed(extract, [path])
            text = "\n".join(p.text for p in extraction.passages)
            found = sum(sentence in text for page in range(args.pages) for sentence in page_sentences(page))
            rows.append((f"extract {name}", seconds, found / (args.pages * SENTENCES_PER_PAGE)))
            passages += extraction.passages
        seconds, chunks = timed(chunk_passages, passages, tokenizer, 512)
        rows.append((f"chunk all ({len(chunks)} chunks of ≤512 tokens)", seconds, None))
    print(f"{args.pages} pages per format, {SENTENCES_PER_PAGE} sentences a page\n")
    print(f"{'step':<40} {'seconds':>8} {'pages/s':>9} {'sentences found':>16}")
    for step, seconds, found in rows:
        pages = args.pages * (5 if step.startswith("chunk") else 1)
        print(f"{step:<40} {seconds:>8.3f} {pages / max(seconds, 1e-9):>9,.0f} {'' if found is None else f'{found:.1%}':>16}")


if __name__ == "__main__":
    main()
