"""A small, strict HTTP/1.1 server side for the decision point's HTTP endpoint.

Only what gateways and AuthZEN clients need, and nothing ambiguous: a request line, header
fields, a body framed by Content-Length (never chunked), keep-alive and `Connection: close`.

- Lines end with CRLF; a bare LF or CR, an obs-folded header, a space before the colon, a
  control character in a value, a non-token method or header name is a 400.
- Limits: `max_line` bytes per line, `max_headers` fields, `max_head` bytes for the whole head,
  `max_body` bytes of body (413 beyond it).
- HTTP/1.1 requires one Host; Content-Length must be digits and appear once; any
  Transfer-Encoding is refused (411; 400 with a Content-Length as well: the classic smuggling
  shape); `Expect: 100-continue` is honoured, any other expectation is a 417.
- Timeouts: `idle` until a request's first byte (then the connection just closes), `head` for
  the rest of its head and `body` for its body (a 408, then the connection closes).

`read_request` returns None when the client closed cleanly between requests and raises
`WireError` for everything it refuses; after a WireError the connection must be closed (its
bytes can no longer be trusted to line up with requests).
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from dataclasses import dataclass, field

REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MAX_BLANK_LINES = 4  # CRLFs tolerated before a request line (RFC 9112 2.2)


@dataclass(frozen=True, slots=True)
class WireLimits:
    max_line: int = 16 * 1024
    max_headers: int = 100
    max_head: int = 64 * 1024
    max_body: int = 4 * 1024 * 1024
    idle_timeout: float = 75.0
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 30.0


class WireError(Exception):
    """A request the parser refuses. `target` is the request-target when the request line was
    read (so the caller knows which endpoint was asked), else None."""

    def __init__(self, status: int, message: str, target: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target


@dataclass(slots=True)
class Request:
    method: str
    target: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    fields: list[tuple[str, str]]  # lower-case names, in order, repeats kept
    body: bytes = b""
    keep_alive: bool = True
    _by_name: dict[str, list[str]] | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def values(self, name: str) -> list[str]:
        """Every field of that (lower-case) name, in order."""
        if self._by_name is None:
            by_name: dict[str, list[str]] = {}
            for n, v in self.fields:
                by_name.setdefault(n, []).append(v)
            self._by_name = by_name
        return self._by_name.get(name, [])

    def get(self, name: str) -> str | None:
        """All fields of that name joined with `, ` (list semantics), or None."""
        found = self.values(name)
        return ", ".join(found) if found else None

    def headers(self) -> dict[str, str]:
        self.values("")
        assert self._by_name is not None
        return {name: ", ".join(values) for name, values in self._by_name.items()}


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _token(data: bytes) -> bool:
    return _TOKEN.fullmatch(data) is not None


def _bad_value(data: bytes) -> bool:
    return _CONTROL.search(data) is not None


async def _readline(reader: asyncio.StreamReader, limits: WireLimits, target: str | None, prefix: bytes = b"") -> bytes:
    """One line with its CRLF; too long is 414 for the request line (target None), else 431."""
    try:
        line = prefix + await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        line = b""
    if not line or len(line) > limits.max_line:
        if target is None:
            raise WireError(414, "request line too long")
        raise WireError(431, "header line too long", target)
    if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
        raise WireError(400, "lines must end with CRLF", target)
    return line


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise WireError(400, "malformed request line")
    method, target, version = parts
    if not _token(method) or len(method) > 32:
        raise WireError(400, "malformed method")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version.startswith(b"HTTP/") and len(version) == 8:
            raise WireError(505, "only HTTP/1.1 and HTTP/1.0 are served")
        raise WireError(400, "malformed HTTP version")
    if not target or any(b < 0x21 or b > 0x7E for b in target):
        raise WireError(400, "malformed request target")
    text = target.decode("ascii")
    if text.startswith(("http://", "https://")):  # absolute-form: keep path and query
        rest = text.split("://", 1)[1]
        slash = rest.find("/")
        text = rest[slash:] if slash >= 0 else "/"
    elif not text.startswith("/") and not (text == "*" and method == b"OPTIONS"):
        raise WireError(400, "request target must be a path")
    return method.decode("ascii"), text, version.decode("ascii")


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: WireLimits
) -> Request | None:
    """One request, or None when the client closes (or stays silent for `idle_timeout`) before
    its first byte. Raises WireError (a request that took too long is a 408), or
    asyncio.IncompleteReadError when the client went away mid-request."""
    try:
        async with asyncio.timeout(limits.idle_timeout):
            first = await reader.read(1)
    except TimeoutError:
        return None
    if not first:
        return None
    if first[0] not in _TCHAR and first != b"\r":  # not a method: TLS, HTTP/2 binary, noise
        raise WireError(400, "malformed request line")
    state: list[str | None] = [None]  # the target, once the request line is read
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(limits.head_timeout) as deadline:
            return await _read_rest(reader, writer, limits, first, state, deadline, loop)
    except TimeoutError:
        raise WireError(408, "request not received in time", state[0]) from None


async def _read_rest(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    limits: WireLimits,
    first: bytes,
    state: list[str | None],
    deadline: asyncio.Timeout,
    loop: asyncio.AbstractEventLoop,
) -> Request:
    line = await _readline(reader, limits, None, first)
    blanks = 0
    while line == b"\r\n":
        blanks += 1
        if blanks > _MAX_BLANK_LINES:
            raise WireError(400, "malformed request line")
        line = await _readline(reader, limits, None)
    method, target, version = _parse_request_line(line[:-2])
    state[0] = target
    fields: list[tuple[str, str]] = []
    size = len(line)
    while True:
        raw = (await _readline(reader, limits, target))[:-2]
        size += len(raw) + 2
        if size > limits.max_head:
            raise WireError(431, "request head too large", target)
        if not raw:
            break
        if len(fields) >= limits.max_headers:
            raise WireError(431, "too many header fields", target)
        if raw[0] in b" \t":
            raise WireError(400, "obsolete line folding", target)
        name, colon, value = raw.partition(b":")
        if not colon or not _token(name):
            raise WireError(400, "malformed header field", target)
        value = value.strip(b" \t")
        if _bad_value(value):
            raise WireError(400, "control character in a header value", target)
        fields.append((name.decode("ascii").lower(), value.decode("latin-1")))
    request = Request(method, target, version, fields)
    length = _framing(request)
    request.keep_alive = _keep_alive(request)
    if length:
        if length > limits.max_body:
            raise WireError(413, "request body too large", target)
        expect = request.get("expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                raise WireError(417, "unsupported expectation", target)
            if version == "HTTP/1.1":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        deadline.reschedule(loop.time() + limits.body_timeout)
        request.body = await reader.readexactly(length)
    return request


def _framing(request: Request) -> int:
    target = request.target
    hosts = request.values("host")
    if len(hosts) > 1 or (request.version == "HTTP/1.1" and not hosts):
        raise WireError(400, "exactly one Host header is required", target)
    lengths = request.values("content-length")
    if request.values("transfer-encoding"):
        if lengths:
            raise WireError(400, "Transfer-Encoding with Content-Length", target)
        raise WireError(411, "chunked requests are not accepted: send a Content-Length", target)
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise WireError(400, "more than one Content-Length", target)
    value = lengths[0]
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise WireError(400, "malformed Content-Length", target)
    return int(value)


def _keep_alive(request: Request) -> bool:
    tokens = {t.strip().lower() for v in request.values("connection") for t in v.split(",")}
    if "close" in tokens:
        return False
    if request.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return True


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._text = email.utils.formatdate(now, usegmt=True).encode("ascii")
        return self._text


_clock = _Clock()


def render(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    keep_alive: bool,
    version: str = "HTTP/1.1",
    head: bool = False,
) -> bytes:
    """A response; header values must already be safe (callers check what they did not write)."""
    out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n".encode("ascii"), b"Date: ", _clock.date(), b"\r\n"]
    for name, value in headers:
        out.append(f"{name}: {value}\r\n".encode())
    out.append(b"Content-Length: %d\r\n" % len(body))
    if not keep_alive:
        out.append(b"Connection: close\r\n")
    elif version == "HTTP/1.0":
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    if not head:
        out.append(body)
    return b"".join(out)


def safe_header(name: str, value: str) -> bool:
    """A field the endpoint may send: a token name, and a value without control characters."""
    try:
        return _token(name.encode("ascii")) and not _bad_value(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False
