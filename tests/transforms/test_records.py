"""Records with digests, and which of them an update keeps from the live version."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from indexes.storage.tables import RECORD_DIGEST
from transforms.elements import Document, Failure
from transforms.formats import RecordFields
from transforms.records import KeptRecords, LiveRecords, record_digest, record_items


def _items(data: bytes, ext: str = ".jsonl", live=None) -> list:
    return list(
        record_items(
            data,
            document_id="f" + ext,
            uri="/x/f" + ext,
            extension=ext,
            fields=RecordFields(),
            max_document_bytes=1000,
            live=live,
        )
    )


def _live(items) -> LiveRecords:
    """The live records of a file read before (row ids: their order)."""
    out: dict = {}
    for n, d in enumerate(items):
        out.setdefault(d.metadata[RECORD_DIGEST], {})[d.document_id] = [n]
    return LiveRecords.of(out)


def test_each_format_gives_the_same_digest_for_the_same_record():
    rows = [{"id": "a", "text": "one", "n": 1}, {"id": "b", "text": "two", "n": 2}]
    jsonl = b'{"id": "a", "text": "one", "n": 1}\n\n{"id": "b", "text": "two", "n": 2}\n'
    csv = b"id,text,n\na,one,1\nb,two,2\n"
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    for data, ext in ((jsonl, ".jsonl"), (csv, ".csv"), (out.getvalue(), ".parquet")):
        first, again = _items(data, ext), _items(data, ext)
        assert [d.document_id for d in first] == ["a", "b"]
        assert [d.metadata for d in first] == [d.metadata for d in again]
        assert first[0].metadata[RECORD_DIGEST] != first[1].metadata[RECORD_DIGEST]
    assert _items(jsonl)[0].metadata[RECORD_DIGEST] == record_digest(jsonl.split(b"\n")[0])


def test_unchanged_records_are_kept_changed_ones_read():
    before = b'{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n{"id": "c", "text": "3"}\n'
    live = _live(_items(before))
    after = b'{"id": "c", "text": "3"}\n{"id": "b", "text": "two!"}\n{"id": "d", "text": "4"}\n'
    got = _items(after, live=live)
    assert got[0] == KeptRecords(1, (2,))  # c: moved within the file, same id: kept
    assert isinstance(got[1], Document) and got[1].text == "two!"
    assert isinstance(got[2], Document) and got[2].document_id == "d"


def test_records_without_ids_are_kept_only_at_their_position():
    before = b'{"text": "one"}\n{"text": "two"}\n'
    live = _live(_items(before))
    assert _items(before, live=live) == [KeptRecords(1, (0,)), KeptRecords(1, (1,))]
    shifted = _items(b'{"text": "zero"}\n' + before, live=_live(_items(before)))
    assert [d.document_id for d in shifted] == ["f.jsonl#L1", "f.jsonl#L2", "f.jsonl#L3"]
    assert all(isinstance(d, Document) for d in shifted)  # new positions: new documents


def test_a_repeated_record_is_kept_once():
    line = b'{"id": "a", "text": "one"}\n'
    got = _items(line + line, live=_live(_items(line)))
    assert got[0] == KeptRecords(1, (0,)) and isinstance(got[1], Document)
    # records of several rows, or the same content under two ids, are kept one by one
    two = b'{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n'
    live = LiveRecords.of(
        {
            d: {doc: [n, n + 10]}
            for n, (d, doc) in enumerate(
                (x.metadata[RECORD_DIGEST], x.document_id) for x in _items(two)
            )
        }
    )
    assert live.digests.size == 0
    assert _items(two, live=live) == [KeptRecords(1, (0, 10)), KeptRecords(1, (1, 11))]


def test_bad_records_fail_as_before():
    got = _items(b'{"id": "a", "text": "one"}\nnot json\n[1]\n')
    assert isinstance(got[0], Document)
    assert isinstance(got[1], Failure) and "line 2: invalid JSON" in got[1].message
    assert got[2].message == "record is not an object" and got[2].source_id == "f.jsonl#L3"
    (bad,) = _items(b"\xff\xfe", ".csv")
    assert "not valid UTF-8" in bad.message
