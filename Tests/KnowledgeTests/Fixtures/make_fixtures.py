#!/usr/bin/env python3
"""Writes the text-extraction fixtures of the knowledge service into the directory argv[1].

Python 3 standard library only, deterministic (the same bytes on every run, for a given zlib),
about two seconds: the bombs are small on disk and huge only once inflated, and are built by
repeating one full-flush deflate block instead of compressing gigabytes. Nothing here is
committed as a binary; the tests run this script into a temporary directory.

Benign files (each must extract to known text):

  valid.pdf       Three pages written by hand (catalog, page tree, Helvetica, one content stream
                  per page, xref, trailer). Page k holds "Page <k> <word>": alpha, bravo, charlie.
                  Checks: pdftotext reads it, and the text has exactly two form feeds (one between
                  pages, none after the last), so the chunker sees pages 1, 2, 3.
  valid.docx      A minimal WordprocessingML package ([Content_Types].xml, _rels/.rels,
                  word/document.xml): a Heading1 paragraph "Getting started", two body paragraphs
                  (the second with a tab, a line break and the entities &amp; &lt; &gt;), a
                  Heading2 "Details" and a paragraph with deleted text (w:delText). Checks:
                  detection through the zip's central directory, unzip out of process, the
                  in-process XML walk, "#"/"##" heading lines, deleted text left out.
  valid.doc       A minimal Word 97 binary written by hand: an OLE2 compound file (FAT, directory,
                  no mini stream) with a WordDocument stream (a FIB with nFib 0x00C1 and the places
                  of the piece table and stylesheet) and a 1Table stream (the CLX: one 8-bit piece;
                  the STSH: one "Normal" style). The text is three
                  paragraphs, with a hard page break before the third. Checks: antiword (or catdoc)
                  reads a real Word 97 structure; the text is the three paragraphs separated by
                  blank lines, with no form feed (antiword drops the break, catdoc prints a form
                  feed, which the extractor turns into a paragraph break).
  page.html       An HTML page with a head (title, style, script), comments, a bare "<" in text
                  ("3 < 4"), a ">" inside an attribute value, entities (named, decimal, hex,
                  unknown, a surrogate), h1/h2, a list, a table, a pre block, a noscript and a
                  script in the body. Checks: HTMLText drops the head, scripts, styles,
                  comments and noscript, keeps pre whitespace, turns headings into "#" lines.

Hostile files (each must fail the document with a clear, sanitized message, quickly):

  truncated.pdf   valid.pdf cut in half: no xref, no trailer, no %%EOF. Checks: refused as damaged
                  (the extractor requires %%EOF in the last KiB before running the tool at all;
                  with an %%EOF appended, pdftotext itself fails: "Couldn't read xref table").
  bomb.pdf        CPU: one page whose content stream is FlateDecode of 1 GiB of "q Q" (268 million
                  graphics-state operators; about 1 MB on disk). pdftotext needs about a minute.
                  Checks: stopped by the wall-clock timeout or the CPU rlimit, whichever the limits
                  make first (with the defaults, 30 s wall and 30 s CPU: the timeout).
  memory-bomb.pdf Memory: a TJ array of 512 million numbers (1 GiB of "0 ", about 1 MB on disk) that
                  poppler's content parser holds whole. Checks: the address-space rlimit ends it
                  (std::bad_alloc, SIGABRT) within seconds; without one it passes 4 GB.
  layout-bomb.pdf Super-linear time: 2.5 million lines of text 0.00002 pt apart (128 MiB inflated,
                  about 400 KB on disk); pdftotext's layout is quadratic on them (minutes, memory
                  growing slowly). Checks: the timeout.
  bomb.docx       A zip whose word/document.xml inflates to 1.5 GiB ("a" repeated inside one w:t;
                  the sizes and CRC in the headers are the true ones), about 1.5 MB on disk.
                  Checks: unzip's stdout is cut at maxDecompressedBytes and the run killed, well
                  before the timeout.
  not-word.doc    An OLE2 compound file (the D0 CF 11 E0 magic) holding only a "Workbook" stream,
                  i.e. not a Word document. Checks: detected as msword by magic, then antiword
                  refuses it and catdoc says it is an Excel file: "the file is an Excel
                  spreadsheet, not a Word document".
"""

import os
import struct
import sys
import zlib

MIB = 1 << 20


# --- PDF ---------------------------------------------------------------------------------------


def pdf_document(pages):
    """A PDF written by hand: one page per entry of `pages`, each a list of content streams
    (bytes, or ("flate", zlib bytes)) that the reader concatenates."""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    next_id = 4
    page_ids = []
    for streams in pages:
        page_id = next_id
        stream_ids = list(range(page_id + 1, page_id + 1 + len(streams)))
        next_id = page_id + 1 + len(streams)
        page_ids.append(page_id)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents [" + b" ".join(b"%d 0 R" % i for i in stream_ids) + b"] >>"
        )
        for stream_id, stream in zip(stream_ids, streams):
            extra = b""
            if isinstance(stream, tuple):
                extra, stream = b" /Filter /FlateDecode", stream[1]
            objects[stream_id] = b"<< /Length %d%s >>\nstream\n" % (len(stream), extra) + stream + b"\nendstream"
    objects[2] = (
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % i for i in page_ids) + b"] /Count %d >>" % len(page_ids)
    )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def text_stream(line):
    return b"BT /F1 24 Tf 72 700 Td (" + line.encode("latin-1") + b") Tj ET"


def repeated_flate(unit, total_bytes):
    """zlib data that inflates to `unit` repeated to about `total_bytes` (whole units only),
    built without compressing it all: after a full flush the compressor is back in the same
    state, so the deflate block for one more chunk of units is the same bytes every time."""
    chunk = unit * (MIB // len(unit))
    chunks = total_bytes // MIB
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    steady = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    # Z_FINISH adds an empty final block and the Adler-32 of the two chunks compressed so far;
    # the real checksum covers all of them.
    tail = compressor.flush(zlib.Z_FINISH)[:-4]
    adler = 1
    for _ in range(chunks):
        adler = zlib.adler32(chunk, adler)
    return first + steady * (chunks - 1) + tail + struct.pack(">I", adler)


def bomb_pdf():
    """CPU: one page whose content stream is 1 GiB of "q Q" (save and restore the graphics state,
    268 million operators) in about 1 MB."""
    visible = b"BT /F1 12 Tf 72 700 Td (Bomb page) Tj ET\n"
    return pdf_document([[visible, ("flate", repeated_flate(b"q Q\n", 1024 * MIB))]])


def memory_bomb_pdf():
    """Memory: a TJ array of 512 million numbers, which the content parser holds whole."""
    return pdf_document([[b"BT /F1 12 Tf 72 700 Td [", ("flate", repeated_flate(b"0 ", 1024 * MIB)), b"] TJ ET"]])


def layout_bomb_pdf():
    """Super-linear layout: 2.5 million lines of text 0.00002 pt apart, which all land in one
    baseline bucket of pdftotext's text layout."""
    start = b"BT /F1 4 Tf 72 700 Td\n"
    unit = b"(Lorem ipsum dolor sit amet consectetur) Tj 0 -0.00002 Td\n"
    return pdf_document([[start, ("flate", repeated_flate(unit, 128 * MIB))]])


# --- DOCX --------------------------------------------------------------------------------------

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCUMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<w:document xmlns:w="{W_NS}"><w:body>'
    '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Getting started</w:t></w:r></w:p>'
    '<w:p><w:r><w:t xml:space="preserve">The first paragraph </w:t></w:r>'
    "<w:r><w:rPr><w:b/></w:rPr><w:t>explains</w:t></w:r><w:r><w:t xml:space=\"preserve\"> the setup.</w:t></w:r></w:p>"
    "<w:p><w:r><w:t>Second</w:t><w:tab/><w:t>paragraph</w:t><w:br/>"
    "<w:t>with a break &amp; entities &lt;ok&gt; &#233;t&#xE9;.</w:t></w:r></w:p>"
    '<w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Details</w:t></w:r></w:p>'
    "<w:p><w:r><w:t>Last paragraph.</w:t></w:r><w:r><w:delText>deleted text</w:delText></w:r></w:p>"
    "<w:sectPr/></w:body></w:document>"
)


def zip_archive(members):
    """A zip written by hand: [(name, raw deflate data, crc32, uncompressed size)], fixed date."""
    date, time = (2024 - 1980) << 9 | 1 << 5 | 1, 0
    out = bytearray()
    central = bytearray()
    for name, data, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, time, date, crc, len(data), size, len(encoded), 0)
        out += encoded + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, time, date, crc, len(data), size, len(encoded), 0, 0, 0, 0, 0,
            offset,
        )
        central += encoded
    directory = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), directory, 0)
    return bytes(out)


def deflated_member(name, data):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return name, compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data)


def bomb_docx():
    """word/document.xml inflates to 1.5 GiB ("a" inside one w:t), its true size and CRC in the
    headers; the deflate data repeats one full-flush block, so the script stays fast."""
    head = f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>'.encode()
    first = head + b"a" * (MIB - len(head))
    chunk = b"a" * MIB
    count = 1536
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first_block = compressor.compress(first) + compressor.flush(zlib.Z_FULL_FLUSH)
    steady = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH) == steady
    tail = compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(first)
    for _ in range(count - 1):
        crc = zlib.crc32(chunk, crc)
    data = first_block + steady * (count - 1) + tail
    return zip_archive(
        [
            deflated_member("[Content_Types].xml", CONTENT_TYPES.encode()),
            deflated_member("_rels/.rels", RELS.encode()),
            ("word/document.xml", data, crc, count * MIB),
        ]
    )


# --- DOC (Word 97 in an OLE2 compound file) ----------------------------------------------------

SECTOR = 512
FREE, END_OF_CHAIN, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def compound_file(streams):
    """An OLE2 (CFB v3) file holding `streams` [(name, bytes)] at the root, each padded to 4 KiB
    or more so that no mini stream is needed."""
    padded = []
    for name, data in streams:
        size = max(len(data), 4096)
        data = data + b"\0" * (size - len(data))
        data += b"\0" * (-len(data) % SECTOR)
        padded.append((name, data, size))
    directory_sectors = 1  # 4 entries: root + up to 3 streams
    assert len(padded) <= 3
    sector = 1 + directory_sectors  # sector 0 is the FAT
    starts = []
    for _, data, _ in padded:
        starts.append(sector)
        sector += len(data) // SECTOR
    total = sector
    assert total <= SECTOR // 4
    fat = [FREE] * (SECTOR // 4)
    fat[0] = FAT_SECTOR
    fat[1] = END_OF_CHAIN
    for start, (_, data, _) in zip(starts, padded):
        count = len(data) // SECTOR
        for i in range(count):
            fat[start + i] = start + i + 1 if i < count - 1 else END_OF_CHAIN

    def entry(name, kind, left, right, child, start, size):
        encoded = name.encode("utf-16-le") + b"\0\0" if name else b""
        return (
            encoded.ljust(64, b"\0")
            + struct.pack("<HBB", len(encoded), kind, 1)
            + struct.pack("<III", left, right, child)
            + b"\0" * 16
            + struct.pack("<I", 0)
            + b"\0" * 16
            + struct.pack("<IQ", start, size)
        )

    # A binary search tree under the root, ordered by name length then name: here the streams are
    # chained as left children of the longest name (all black, which is a valid red-black tree
    # only for tiny trees; readers do not check colours).
    order = sorted(range(len(padded)), key=lambda i: (len(padded[i][0]), padded[i][0].upper()))
    # Root child: the last (largest); each node's left sibling is the next smaller one.
    entries = [entry("Root Entry", 5, NO_STREAM, NO_STREAM, 1 + order[-1], END_OF_CHAIN, 0)]
    left_of = {order[k]: order[k - 1] for k in range(1, len(order))}
    for i, (name, _, size) in enumerate(padded):
        left = 1 + left_of[i] if i in left_of else NO_STREAM
        entries.append(entry(name, 2, left, NO_STREAM, NO_STREAM, starts[i], size))
    while len(entries) < 4:
        entries.append(entry("", 0, NO_STREAM, NO_STREAM, NO_STREAM, 0, 0))
    header = (
        bytes.fromhex("D0CF11E0A1B11AE1")
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, END_OF_CHAIN, 0, END_OF_CHAIN, 0)
        + struct.pack("<I", 0)
        + struct.pack("<I", FREE) * 108
    )
    assert len(header) == SECTOR
    body = struct.pack("<%dI" % len(fat), *fat) + b"".join(entries)
    for _, data, _ in padded:
        body += data
    return header + body


def word97_document(paragraphs):
    """WordDocument and 1Table streams for `paragraphs` (cp1252 text; "\\x0c" is a page break)."""
    text = "".join(p + "\r" for p in paragraphs).encode("cp1252")
    text_offset = 0x400
    fib = bytearray(text_offset)
    struct.pack_into("<HH", fib, 0x00, 0xA5EC, 0x00C1)  # wIdent, nFib (Word 97)
    struct.pack_into("<H", fib, 0x06, 0x0409)  # lid: en-US
    struct.pack_into("<H", fib, 0x0A, 0x0200 | 0x1000)  # fWhichTblStm (1Table), fExtChar
    struct.pack_into("<H", fib, 0x0C, 0x00BF)  # nFibBack
    struct.pack_into("<II", fib, 0x18, text_offset, text_offset + len(text))  # fcMin, fcMac
    struct.pack_into("<H", fib, 0x20, 14)  # csw
    struct.pack_into("<H", fib, 0x3E, 22)  # cslw
    struct.pack_into("<I", fib, 0x40, text_offset + len(text))  # cbMac
    struct.pack_into("<I", fib, 0x4C, len(text))  # ccpText
    struct.pack_into("<H", fib, 0x98, 93)  # cbRgFcLcb (Word 97)
    # The piece table (CLX) at the start of 1Table: one piece, 8-bit text at text_offset.
    plc = struct.pack("<II", 0, len(text)) + struct.pack("<HIH", 0, (text_offset * 2) | 0x40000000, 0)
    clx = b"\x02" + struct.pack("<I", len(plc)) + plc
    struct.pack_into("<II", fib, 0x1A2, 0, len(clx))  # fcClx, lcbClx
    # The stylesheet (STSH) after it: antiword parses one whatever its length says (and reads
    # past a 1-byte buffer, crashing now and then, when there is none). One paragraph style,
    # "Normal": STSHI (cstd 1, cbSTDBaseInFile 10, stiMaxWhenSaved 0x5B, istdMaxFixedWhenSaved
    # 15), then the STD: base (sti 0, sgc paragraph, istdBase none, istdNext 0), name, a PAPX
    # UPX holding istd 0 and an empty CHPX UPX.
    name = "Normal".encode("utf-16-le")
    std = struct.pack("<HHHHH", 0, 1 | 0xFFF << 4, 2, 0, 0) + struct.pack("<H", len(name) // 2) + name + b"\0\0"
    std += struct.pack("<HHH", 2, 0, 0)
    stsh = struct.pack("<H", 18) + struct.pack("<HHHHHH3H", 1, 10, 1, 0x5B, 0x0F, 0, 0, 0, 0)
    stsh += struct.pack("<H", len(std)) + std
    struct.pack_into("<II", fib, 0x9A, len(clx), len(stsh))  # fcStshfOrig, lcbStshfOrig
    struct.pack_into("<II", fib, 0xA2, len(clx), len(stsh))  # fcStshf, lcbStshf
    word_document = bytes(fib) + text
    return word_document, clx + stsh


# --- HTML --------------------------------------------------------------------------------------

PAGE_HTML = """<!DOCTYPE html>
<!-- a comment before the root -->
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Not part of the text</title>
  <style>body { color: red; } p::before { content: "<p>"; }</style>
  <script>var secret = "</p><p>not text"; if (a < b && c > d) {}</script>
</head>
<body>
  <h1>Main   title</h1>
  <p>First paragraph with <b>bold</b> and <a href="/x?a=1&amp;b=2" title="a > b">a link</a>.
     Whitespace   collapses.</p>
  <!-- a comment with <p>markup</p> -->
  <p>Entities: &amp; &lt;tag&gt; &quot;q&quot; &#233; &#xE9; &eacute; &nbsp;x &bogus; &#xD800; 3 < 4</p>
  <h2>List</h2>
  <ul><li>one</li><li>two</li></ul>
  <table><tr><td>a1</td><td>b1</td></tr><tr><td>a2</td><td>b2</td></tr></table>
  <pre>line one
    indented   line</pre>
  <noscript><p>Enable JavaScript</p></noscript>
  <script type="text/javascript">document.write("<h1>never</h1>")</script>
  <p>Last<br>line</p>
</body>
</html>
"""


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py OUTPUT_DIRECTORY")
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)

    def write(name, data):
        with open(os.path.join(directory, name), "wb") as file:
            file.write(data)

    valid = pdf_document(
        [[text_stream("Page 1 alpha")], [text_stream("Page 2 bravo")], [text_stream("Page 3 charlie")]]
    )
    write("valid.pdf", valid)
    write("truncated.pdf", valid[: len(valid) // 2])
    write("bomb.pdf", bomb_pdf())
    write("memory-bomb.pdf", memory_bomb_pdf())
    write("layout-bomb.pdf", layout_bomb_pdf())

    write(
        "valid.docx",
        zip_archive(
            [
                deflated_member(name, text.encode())
                for name, text in [
                    ("[Content_Types].xml", CONTENT_TYPES),
                    ("_rels/.rels", RELS),
                    ("word/document.xml", DOCUMENT_XML),
                ]
            ]
        ),
    )
    write("bomb.docx", bomb_docx())

    word_document, table = word97_document(
        ["Quarterly report", "The first paragraph of the Word file.", "\x0cAfter a page break."]
    )
    write("valid.doc", compound_file([("WordDocument", word_document), ("1Table", table)]))
    write("not-word.doc", compound_file([("Workbook", b"\x09\x08\x10\x00" + b"\0" * 100)]))

    write("page.html", PAGE_HTML.encode("utf-8"))


if __name__ == "__main__":
    main()
