"""Labelled sets made from real text found offline, each ``(id, query, document)`` triples.

Three kinds, each from text a person wrote, none written for this benchmark:

- ``spans``: keyword-like queries. Paragraphs of the installed packages' descriptions
  (``site-packages/*.dist-info/METADATA``, their READMEs) and of ``/usr/share/doc``'s
  Markdown files; the query is a window of 12 consecutive words of a paragraph with each
  word dropped with probability 0.35 (at least 5 kept), its one relevant document that
  paragraph.
- ``summaries``: natural-language summaries. The standard library's docstrings: the summary
  line is the query, the body its document (``benchmarks.relevance_docstrings``).
- ``headings``: section titles. Markdown (``#``) and reStructuredText (underlined)
  headings of 3 to 12 words in the packages' descriptions, ``/usr/share/doc`` and CMake's
  help (``/usr/share/cmake-*/Help``); the query is the heading, the document the section's
  first 150 words below it (at least 20). A heading that appears twice is left out.

The files are read in sorted order and the spans' choices are seeded
(``random.Random(seed)``), so a set is the same on every run on the same machine.
"""

from __future__ import annotations

import email
import gzip
import random
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from benchmarks.relevance_docstrings import docstring_pairs

__all__ = ["KINDS", "labelled_triples"]

KINDS = ("spans", "headings", "summaries")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'_-]*")
_MD_HEADING = re.compile(r"^#{1,4}\s+(.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


def _package_texts() -> Iterator[tuple[str, str]]:
    """(name, text) of every installed package's description, then of /usr/share/doc's
    Markdown files, in sorted order."""
    site = Path(sysconfig.get_paths()["purelib"])
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        msg = email.message_from_bytes(meta.read_bytes())
        body = msg.get_payload()
        if isinstance(body, str) and body.strip():
            yield meta.parent.name.split("-")[0], body
    for path in sorted(Path("/usr/share/doc").rglob("*.md*")):
        try:
            raw = path.read_bytes()
            raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
            name = "_".join(f"doc/{path.relative_to('/usr/share/doc')}".split())
            yield name, raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            continue


def _cmake_texts() -> Iterator[tuple[str, str]]:
    for help_dir in sorted(Path("/usr/share").glob("cmake-*/Help")):
        for path in sorted(help_dir.rglob("*.rst")):
            name = "_".join(f"cmake/{path.relative_to(help_dir)}".split())  # ids: one word
            yield name, path.read_text("utf-8", "replace")


def _prose(paragraph: str) -> bool:
    """Running text: no code, tables, lists of links or markup-heavy lines."""
    lines = paragraph.splitlines()
    if any(
        ln.startswith(("    ", "\t", ">>>", "$ ", "|", "..", "```", "#", "- ", "* "))
        for ln in lines
    ):
        return False
    words = paragraph.split()
    wordy = sum(1 for w in words if _WORD.fullmatch(w.strip(".,;:()!?\"'")))
    return len(words) > 0 and wordy / len(words) >= 0.8 and "http" not in paragraph


def _spans(seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out, seen = [], set()
    for name, text in _package_texts():
        for j, para in enumerate(re.split(r"\n\s*\n", text)):
            if not _prose(para):
                continue
            body = " ".join(para.split())
            words = body.split()
            if not 30 <= len(words) <= 150 or body in seen:
                continue
            seen.add(body)
            start = rng.randrange(0, len(words) - 12 + 1)
            window = [_WORD.search(w) for w in words[start : start + 12]]
            window = [m.group(0) for m in window if m]
            kept = [w for w in window if rng.random() >= 0.35]
            if len(kept) < 5:
                kept = window[:5]
            out.append((f"{name}#p{j}", " ".join(kept), body))
    return out


def _sections(text: str) -> Iterator[tuple[str, str]]:
    """(heading, body) of the Markdown and reStructuredText sections of ``text``."""
    lines = text.splitlines()
    heads: list[tuple[int, int, str]] = []  # (heading line, first body line, title)
    for i, line in enumerate(lines):
        md = _MD_HEADING.match(line)
        if md:
            heads.append((i, i + 1, md.group(1)))
        elif i > 0 and _RST_UNDERLINE.match(line) and lines[i - 1].strip():
            title = lines[i - 1].strip()
            if len(line.strip()) >= len(title) - 1 and not _RST_UNDERLINE.match(title):
                heads.append((i - 1, i + 1, title))
    for n, (_, first, title) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        yield title, "\n".join(lines[first:end])


def _headings() -> list[tuple[str, str, str]]:
    counts: dict[str, int] = {}
    found = []
    sources = list(_package_texts()) + list(_cmake_texts())
    for name, text in sources:
        for j, (title, body) in enumerate(_sections(text)):
            title = " ".join(_WORD.findall(title.replace("`", "")))
            words = " ".join(p for p in re.split(r"\n\s*\n", body) if _prose(p)).split()
            if not 3 <= len(title.split()) <= 12 or len(words) < 20:
                continue
            key = title.lower()
            counts[key] = counts.get(key, 0) + 1
            found.append((f"{name}#s{j}", title, " ".join(words[:150])))
    return sorted(t for t in found if counts[t[1].lower()] == 1)


def labelled_triples(kind: str, seed: int = 0) -> list[tuple[str, str, str]]:
    """Every ``(document id, query, document text)`` of a kind, in a stable order."""
    if kind == "spans":
        return _spans(seed)
    if kind == "headings":
        return _headings()
    if kind == "summaries":
        return docstring_pairs()
    raise ValueError(f"unknown kind {kind!r}; use one of {KINDS}")
