"""Building small corpora on disk for the transform tests: valid files and bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.support.images import jpeg, solid_png


def write_valid(root: Path) -> dict[str, str]:
    """Valid inputs; returns {document id: what the text mentions}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    (root / "cats.txt").write_text("Cats purr and sleep in the sun all afternoon.")
    (root / "sub" / "boats.md").write_text("# Boats\n\nSailing boats cross the bay at dawn.")
    (root / "page.html").write_text(
        "<html><head><style>p{color:red}</style><script>var x=1;</script></head>"
        "<body><h1>Trains</h1><p>Night trains run &amp; rattle north.</p></body></html>"
    )
    (root / "records.jsonl").write_text(
        json.dumps({"id": "rec-1", "text": "Tea is brewed with hot water.", "lang": "en"})
        + "\n\n"
        + json.dumps({"id": "rec-2", "text": "Bread rises overnight.", "lang": "en"})
        + "\n"
    )
    (root / "table.csv").write_text("id,text,topic\ncsv-1,Snow falls in winter.,weather\n")
    pq.write_table(
        pa.table({"id": ["pq-1"], "text": ["Rain feeds the rivers."], "n": [3]}),
        root / "data.parquet",
    )
    (root / "red.png").write_bytes(solid_png())
    (root / "red.txt").write_text("a red square")  # caption sidecar, not a document
    (root / "rotated.jpg").write_bytes(jpeg(orientation=6))
    return {
        "cats.txt": "Cats",
        "sub/boats.md": "Sailing",
        "page.html": "Night trains",
        "rec-1": "Tea",
        "rec-2": "Bread",
        "csv-1": "Snow",
        "pq-1": "Rain",
    }


def write_bad(root: Path) -> dict[str, str]:
    """Bad inputs, and one valid but huge image; returns {source id: reason fragment}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(b"\x00\x01\x02ELF\x00" * 100)
    (root / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    with open(root / "huge.txt", "wb") as f:
        line = b"a perfectly ordinary line of text in a very large file\n"
        f.write(line * (50_000_000 // len(line) + 1))
    (root / "broken.jsonl").write_text('{"id": "ok-1", "text": "fine"}\n{"id": \n{"id": "x"}\n')
    whole = solid_png(size=(256, 256))
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "zero.png").write_bytes(b"")
    (root / "notes.xyz").write_text("what is this")
    Image.new("RGB", (8000, 5000), (90, 90, 200)).save(root / "photo_40mp.jpg", quality=80)
    return {
        "empty.txt": "empty file",
        "binary.txt": "binary content (NUL bytes)",
        "latin1.txt": "not valid UTF-8 at byte 3",
        "huge.txt": "over the 10 MB limit",
        "broken.jsonl#L2": "line 2: invalid JSON",
        "broken.jsonl#L3": "record has no 'text' field",
        "truncated.png": "cannot decode image",
        "zero.png": "empty file",
        "notes.xyz": "unsupported file type '.xyz'",
    }
