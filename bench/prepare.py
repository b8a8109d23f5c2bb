"""Pages per second extracting documents for `tuneforge data prepare`, per format, next to a baseline.

Each format gets the same generated text, 40 sentences to a page: a PDF of N pages (written here,
one text line per sentence), a DOCX and an HTML page with N sections of a heading, paragraphs and a
table, Markdown and TXT. The baseline is reading the TXT file and splitting its paragraphs: what
extraction costs over having the text already. Chunking with the default model's tokenizer is timed
on all of it.

Drafting pairs is timed on the first --draft-chunks chunks with the default GGUF (SmolLM2-135M,
too weak to draft well: the kept share shows the gates at work, not a good generator), three ways:
llama-cpp-python called in this process with the same prompt and schema (the baseline: what a
hand-written script costs), `--generator FILE.gguf` (llama.cpp in tuneforge's child process), and
`--generator URL` (llama-cpp-python's OpenAI-compatible server through the openai client). The
gates are timed on --gate-pairs synthetic pairs (their near-duplicate check compares each pair with
those kept before it).

    python bench/prepare.py [--pages 50] [--draft-chunks 6] [--gate-pairs 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' document writers
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_sources import timed

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--draft-chunks", type=int, default=6)
    parser.add_argument("--gate-pairs", type=int, default=5000)
    args = parser.parse_args()

    from tuneforge.core.drafting.chunking import chunk_passages
    from tuneforge.core.drafting.documents import extract
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
        drafting = draft_rows(chunks[: args.draft_chunks], folder)
    print(f"{args.pages} pages per format, {SENTENCES_PER_PAGE} sentences a page\n")
    print(f"{'step':<40} {'seconds':>8} {'pages/s':>9} {'sentences found':>16}")
    for step, seconds, found in rows:
        pages = args.pages * (5 if step.startswith("chunk") else 1)
        print(f"{step:<40} {seconds:>8.3f} {pages / max(seconds, 1e-9):>9,.0f} {'' if found is None else f'{found:.1%}':>16}")
    print(f"\ndrafting {QUESTIONS} questions (+{PARAPHRASES} paraphrase) from each of {args.draft_chunks} chunks "
          "with the default GGUF\n")
    print(f"{'generator':<44} {'seconds':>8} {'pairs':>6} {'pairs/min':>10} {'kept':>6}")
    for name, seconds, pairs, kept in drafting:
        print(f"{name:<44} {seconds:>8.1f} {pairs:>6} {pairs / seconds * 60:>10.1f} {'' if kept is None else f'{kept:.0%}':>6}")
    seconds, kept = gate_row(args.gate_pairs)
    print(f"\ngates on {args.gate_pairs} pairs: {seconds:.2f} s ({args.gate_pairs / seconds:,.0f} pairs/s), {kept:.0%} kept")


QUESTIONS, PARAPHRASES = 3, 1


def draft_rows(chunks, folder: Path) -> list[tuple[str, float, int, float | None]]:
    """(generator, seconds, pairs, kept share) drafting `chunks` three ways (see the module docstring)."""
    from tests.core.servers import llama_server
    from tuneforge.core.drafting.drafts import DraftCache, draft_pairs, pairs_of, parse_reply
    from tuneforge.core.drafting.generators import GGUF_CONTEXT, open_generator
    from tuneforge.core.drafting.pair_gates import apply_gates
    from tuneforge.core.drafting.prompts import draft_messages, draft_schema, reply_budget
    from tuneforge.core.models import default_gguf_path
    from tuneforge.exporters.gguf.native import open_llama

    gguf = default_gguf_path()
    schema, budget = draft_schema(QUESTIONS, PARAPHRASES), reply_budget(QUESTIONS, PARAPHRASES)
    rows = []
    with open_llama(gguf, n_ctx=GGUF_CONTEXT, seed=0) as llm:
        started, pairs = time.perf_counter(), 0
        for index, chunk in enumerate(chunks):
            reply = llm.create_chat_completion(messages=draft_messages(chunk.text, chunk.source, QUESTIONS, PARAPHRASES),
                                               max_tokens=budget, temperature=0.0,
                                               response_format={"type": "json_object", "schema": schema})
            try:
                pairs += len(pairs_of(chunk, index, parse_reply(reply["choices"][0]["message"]["content"]), PARAPHRASES))
            except ValueError:
                pass  # a reply cut off at the budget: no pairs, as in tuneforge's rows
        rows.append(("llama-cpp-python in-process (baseline)", time.perf_counter() - started, pairs, None))

    def tuneforge_row(name: str, spec: str, cache_folder: Path) -> None:
        generator = open_generator(spec)
        try:
            started = time.perf_counter()
            drafted = draft_pairs(chunks, generator, DraftCache(cache_folder, generator.identity, QUESTIONS, PARAPHRASES),
                                  QUESTIONS, PARAPHRASES)
            seconds = time.perf_counter() - started
        finally:
            generator.close()
        apply_gates(drafted.pairs, [chunk.text for chunk in chunks])
        rows.append((name, seconds, len(drafted.pairs), sum(p.kept for p in drafted.pairs) / max(1, len(drafted.pairs))))

    tuneforge_row("tuneforge --generator FILE.gguf (child)", str(gguf), folder / "drafts-gguf")
    with llama_server(gguf) as (_, url):
        tuneforge_row("tuneforge --generator URL (llama_cpp.server)", url, folder / "drafts-url")
    return rows


def gate_row(count: int) -> tuple[float, float]:
    """Seconds to gate `count` synthetic pairs (a tenth of them repeats), and the share kept."""
    from tuneforge.core.drafting.drafts import Pair
    from tuneforge.core.drafting.pair_gates import apply_gates

    chunk_texts, pairs = [], []
    for i in range(count):
        fact = i if i % 10 else i - 1  # every tenth pair repeats the one before
        sentence = f"Locker {fact} opens with the code {fact * 7919 % 10000:04d}."
        chunk_texts.append(sentence)
        pairs.append(Pair(f"f{i}-0", f"f{i}", 0, f"Which code opens locker {fact}?", f"{fact * 7919 % 10000:04d}", sentence,
                          "bench.md", i))
    seconds, _ = timed(apply_gates, pairs, chunk_texts)
    return seconds, sum(p.kept for p in pairs) / count


if __name__ == "__main__":
    main()
