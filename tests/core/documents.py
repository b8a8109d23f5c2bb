"""Documents the tests (and bench/prepare.py) write the way real tools write them."""

from __future__ import annotations

from pathlib import Path


def write_pdf(path: Path, pages: list[list[str] | None]) -> Path:
    """A PDF whose pages hold these lines of Helvetica text (None: a page with no text layer, as a scan has)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        if lines is None:
            stream = "0 0 1 rg 72 72 200 200 re f"  # a filled rectangle: something on the page, no text
        else:
            stream = "BT /F1 9 Tf 36 760 Td " + " ".join(f"({line}) Tj 0 -14 Td" for line in lines) + " ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                       f"/Contents {len(objects)} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    body, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    body += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(body)
    return path


def write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Harbour timetable", level=1)
    document.add_paragraph("The ferry to Brindlewick leaves at noon on weekdays.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, (("Day", "Departure"), ("Saturday", "09:30")), strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.save(path)
    return path


HTML = """<!doctype html><html><head><title>Quillon</title><style>.nav { color: red }</style>
<script>var tracking = "SCRIPT-JUNK";</script></head><body>
<header><a href="/">Home</a> <a href="/shop">Shop</a></header>
<nav><ul><li>NAV-JUNK menu</li></ul></nav>
<main><article><h1>The lighthouse</h1><p>The door of the Quillon lighthouse is painted teal.</p>
<ul><li>It was built in 1887.</li></ul></article></main>
<footer>FOOTER-JUNK © 2026</footer></body></html>"""


def write_sample_documents(folder: Path) -> Path:
    """A folder of one document in each format (a two-page PDF, a DOCX with a table, an HTML page with
    furniture, Markdown) and a PNG that is not a document."""
    folder.mkdir(parents=True)
    write_pdf(folder / "guide.pdf", [["The lighthouse keeper is Ada Marsh."], ["The museum opens at ten."]])
    write_docx(folder / "timetable.docx")
    (folder / "quillon.html").write_text(HTML, encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\nThe bakery sells rye bread on Fridays.\n", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


LOCKERS = [f"Locker {n} opens with the code {n * 7919 % 10000:04d}." for n in range(1, 25)]


def write_lockers(folder: Path) -> Path:
    """A folder with lockers.md: one fact per sentence (LOCKERS), three to a paragraph."""
    folder.mkdir(parents=True)
    paragraphs = [" ".join(LOCKERS[i:i + 3]) for i in range(0, len(LOCKERS), 3)]
    (folder / "lockers.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
    return folder
