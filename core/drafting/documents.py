"""Text out of the documents people keep: PDF (its text layer, page by page), DOCX (paragraphs,
headings, tables), HTML (the main text, without navigation, scripts or styles), Markdown, TXT.

Each document becomes passages with a source a person can open — `guide.pdf#page=2`,
`notes.md` — so every chunk, and every pair drafted from it, can be traced back. The readers
are permissively licensed (pypdf: BSD, mammoth: BSD, Beautiful Soup: MIT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..progress import Progress, ProgressCallback

DOCUMENT_SUFFIXES = (".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt")
NON_CONTENT_TAGS = ("script", "style", "noscript", "nav", "aside", "form", "template", "svg", "iframe", "button")
"""HTML elements that are page furniture, not the page's text."""
PAGE_FRAME_TAGS = ("header", "footer")
"""The page's banner and footer: furniture, unless they sit inside the main text (an article's own header)."""
BLOCK_TAGS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "tr", "dt", "dd", "figcaption", "caption")


@dataclass(frozen=True)
class Passage:
    """A stretch of a document's text (a page of a PDF, a whole file otherwise) and where it is."""

    text: str
    source: str
    """The file, with `#page=N` for a PDF page."""


@dataclass
class Extraction:
    """What the documents gave: their passages, and the files that gave nothing, with why."""

    passages: list[Passage] = field(default_factory=list)
    documents: int = 0
    pages: int = 0
    skipped: list[str] = field(default_factory=list)
    """`FILE: why` for each file left out (an unsupported type, a PDF without a text layer, an unreadable file)."""


def extract(sources: list[Path], on_progress: ProgressCallback | None = None) -> Extraction:
    """The passages of every document in `sources` (files, or folders searched recursively),
    with `on_progress` told after each document."""
    result = Extraction()
    files = _document_files(sources, result)
    progress = Progress("extracting", len(files))
    for path in files:
        try:
            passages, pages = _extract_file(path)
        except DataError as exc:
            result.skipped.append(exc.message)
        else:
            result.documents += 1
            result.pages += pages
            result.passages += passages
        progress.done, progress.detail = progress.done + 1, path.name
        if on_progress:
            on_progress(progress)
    return result


def _document_files(sources: list[Path], result: Extraction) -> list[Path]:
    files = []
    for source in sources:
        source = Path(source).expanduser()
        if not source.exists():
            raise DataError(f"{source}: no such file or folder", "check the path to your documents")
        candidates = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for path in candidates:
            if path.suffix.lower() in DOCUMENT_SUFFIXES:
                files.append(path)
            elif not path.name.startswith("."):
                result.skipped.append(f"{path}: not a document tuneforge reads ({', '.join(DOCUMENT_SUFFIXES)})")
    return files


def _extract_file(path: Path) -> tuple[list[Passage], int]:
    """(passages, pages) of one document; a DataError says why it gives nothing."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf(path)
    if suffix == ".docx":
        text = _docx(path)
    elif suffix in (".html", ".htm"):
        text = html_text(_read_text(path))
    else:
        text = _read_text(path)
    text = tidy(text)
    if not text:
        raise DataError(f"{path}: no text in it", "")
    return [Passage(text, str(path))], 1


def _pdf(path: Path) -> tuple[list[Passage], int]:
    """Each page with text as a passage; a PDF whose pages have no text layer (a scan) is named with those pages."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        pages = [tidy(page.extract_text() or "") for page in reader.pages]
    except (PdfReadError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable PDF ({exc})", "") from None
    passages = [Passage(text, f"{path}#page={number}") for number, text in enumerate(pages, 1) if text]
    if not passages:
        raise DataError(f"{path}: its {len(pages)} page(s) have no text layer (a scan?); tuneforge reads text, not images "
                        "— run OCR on it first (for example `ocrmypdf IN.pdf OUT.pdf`)", "")
    return passages, len(pages)


def _docx(path: Path) -> str:
    """A Word document's text — paragraphs, headings and table cells, in order — through mammoth's HTML."""
    import mammoth

    try:
        with path.open("rb") as handle:
            converted = mammoth.convert_to_html(handle)
    except Exception as exc:  # noqa: BLE001 - a damaged .docx raises zipfile, KeyError or XML errors
        raise DataError(f"{path}: not a readable Word document ({type(exc).__name__}: {exc})", "") from None
    return html_text(converted.value)


def html_text(html: str) -> str:
    """The main text of an HTML page: <main> or <article> when the page has one, without page furniture;
    one line per paragraph, heading, list item or table row (cells separated by " | ")."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(NON_CONTENT_TAGS):
        tag.decompose()
    for tag in soup(PAGE_FRAME_TAGS):
        if tag.find_parent(["main", "article"]) is None:
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines = []
    for block in root.find_all(BLOCK_TAGS):
        if block.find_parent(BLOCK_TAGS) is not None and block.name != "tr":  # a <p> inside an <li> is read with it
            continue
        if block.name == "tr":
            line = " | ".join(cell.get_text(" ", strip=True) for cell in block.find_all(["td", "th"]))
        else:
            line = block.get_text(" ", strip=True)
        if line:
            lines.append(line)
    return "\n\n".join(lines) if lines else root.get_text("\n", strip=True)


def tidy(text: str) -> str:
    """Whitespace made regular: spaces collapsed within lines, at most one blank line between paragraphs."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})", "") from None
