"""Document ingestion: bytes -> decoded text + sections, refusing binaries and oversize input."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.document import Document
from engine.errors import DocumentError

#: default cap on a document's size; configurable per call.
MAX_BYTES = 20 * 1024 * 1024

_TEXT_SUFFIXES = {".txt": "text/plain", ".text": "text/plain", ".md": "text/markdown",
                  ".markdown": "text/markdown", "": "text/plain"}


def media_type_for(name: str) -> str | None:
    return _TEXT_SUFFIXES.get(Path(name).suffix.lower())


def decode_text(data: bytes, name: str) -> str:
    """Decode bytes as text: UTF-8 (with or without BOM) first, then a detected encoding.
    Binary content is refused rather than decoded into garbage."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(f"{name}: looks like a binary file (NUL bytes); not a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise DocumentError(
            f"{name}: not valid UTF-8 (byte {utf8_error.start}) and no other text encoding fits; "
            "convert it to UTF-8")
    return str(best)


def document_from_bytes(data: bytes, name: str, *, media_type: str | None = None,
                        path: str | None = None, max_bytes: int = MAX_BYTES) -> Document:
    if len(data) > max_bytes:
        raise DocumentError(f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit "
                            "(raise it with --max-bytes)")
    if not data.strip():
        raise DocumentError(f"{name}: the document is empty")
    media_type = media_type or media_type_for(name)
    if media_type is None:
        raise DocumentError(f"{name}: unsupported document type '{Path(name).suffix}' "
                            f"(supported: {', '.join(sorted(s for s in _TEXT_SUFFIXES if s))})")
    text = decode_text(data, name)
    # Normalise newlines so offsets, lines and columns agree across platforms.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Document(text=text, name=name, path=path, sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data), media_type=media_type)


def load_document(path: str | Path, *, max_bytes: int = MAX_BYTES) -> Document:
    p = Path(path)
    if not p.exists():
        raise DocumentError(f"{p}: no such file")
    if p.is_dir():
        raise DocumentError(f"{p}: is a directory")
    size = p.stat().st_size
    if size > max_bytes:
        raise DocumentError(f"{p}: {size:,} bytes is over the {max_bytes:,}-byte limit "
                            "(raise it with --max-bytes)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{p}: cannot read: {exc.strerror}") from None
    return document_from_bytes(data, p.name, path=str(p), max_bytes=max_bytes)


def document_from_text(text: str, name: str = "<text>", media_type: str = "text/markdown") -> Document:
    return Document(text=text.replace("\r\n", "\n"), name=name, media_type=media_type)
