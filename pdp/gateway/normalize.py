"""Request paths in the one form routes are matched against.

The path a gateway forwards may be written many ways for the same resource: percent-encoded
bytes, `.` and `..` segments, doubled slashes. Each is turned into a list of decoded segments
*before* matching, and anything ambiguous is refused rather than guessed, so `/admin/../x`,
`/%2e%2e/admin` or `/a%2fb` cannot reach a route the text does not name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, unquote_to_bytes

MAX_PATH = 8192
MAX_SEGMENTS = 64


class PathError(ValueError):
    pass


def split_target(target: str) -> tuple[str, str]:
    """`/a/b?x=1#f` -> (`/a/b`, `x=1`); the fragment never reaches a server and is dropped."""
    target = target.split("#", 1)[0]
    path, _, query = target.partition("?")
    return path, query


_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def normalize_path(path: str) -> list[str]:
    if len(path) > MAX_PATH:
        raise PathError("path too long")
    if not path.startswith("/"):
        raise PathError("path must start with /")
    if _UNSAFE.search(path):
        raise PathError("path contains spaces or control characters")
    if "\\" in path:
        raise PathError("path contains a backslash")
    if not path.isascii():
        # Raw bytes outside ASCII are not valid in a request target, and backends decode them differently.
        raise PathError("path has characters that must be percent-encoded")
    if ";" in path:
        # `;` starts path parameters that servlet containers strip (`/admin;x=1`, `/..;/admin`).
        raise PathError("path contains `;`")
    if "%" not in path and "/." not in path and "./" not in path and "//" not in path and path[-1] not in "/.":
        # Nothing to decode or resolve: the common case, split as it is. (Other text is checked to be UTF-8.)
        segments = path[1:].split("/")
        if len(segments) > MAX_SEGMENTS:
            raise PathError("path has too many segments")
        return segments
    segments = []
    for raw in path.split("/")[1:]:
        try:
            decoded = unquote_to_bytes(raw).decode("utf-8", errors="strict")
        except UnicodeError:  # bytes that are not UTF-8, or text with lone surrogates (never from the wire)
            raise PathError("path is not valid UTF-8 once decoded") from None
        if "%" in raw and not _valid_escapes(raw):  # checked before decoding above could mislead
            raise PathError("path has a malformed percent escape")
        if "/" in decoded or "\\" in decoded or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
            raise PathError("path encodes a slash, a backslash or a control character")
        if decoded in ("", "."):
            continue  # `//` and `/./` name the same place as `/`
        if ";" in decoded or decoded.endswith((".", " ")) and decoded != "..":
            # Servlet path parameters, and trailing dots or spaces some servers drop (`/admin./x`).
            raise PathError("path segment ends in a dot or a space, or holds `;`")
        if not decoded.isascii() and unicodedata.normalize("NFKC", decoded) != decoded:
            # Look-alikes such as the fullwidth `．．` that NFKC-normalizing backends read as `..`.
            raise PathError("path segment is not in NFKC normal form")
        if decoded == "..":
            if not segments:
                raise PathError("path climbs above the root")
            segments.pop()
            continue
        segments.append(decoded)
        if len(segments) > MAX_SEGMENTS:
            raise PathError("path has too many segments")
    return segments


def _valid_escapes(raw: str) -> bool:
    i = raw.find("%")
    while i >= 0:
        pair = raw[i + 1 : i + 3]
        if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return False
        i = raw.find("%", i + 3)
    return True


def parse_query(query: str) -> dict[str, str]:
    """The first value of each key (what most frameworks read); later repeats are ignored.

    Raises ValueError for more than 256 fields and for text that is not UTF-8 once decoded
    (replacing it would map different requests to one value).
    """
    out: dict[str, str] = {}
    query.encode("utf-8")  # lone surrogates: UnicodeEncodeError, a ValueError
    for key, value in parse_qsl(query, keep_blank_values=True, max_num_fields=256, errors="strict"):
        out.setdefault(key, value)
    return out
