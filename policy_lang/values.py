"""Runtime values shared by the compiler and the engine: durations, datetimes, IPs, globs, windows.

Representations are chosen for speed at decision time: datetimes are epoch seconds (float),
durations are seconds (float), IP addresses and networks are `IPNet` (version, integer, prefix).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION_PART = re.compile(r"([0-9]+)(ms|d|h|m|s)")
_DURATION_FULL = re.compile(r"(?:[0-9]+(?:ms|d|h|m|s))+")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> float:
    """`"1h30m"` -> 5400.0; raises ValueError on anything else."""
    if not _DURATION_FULL.fullmatch(text):
        raise ValueError(f"`{text}` is not a duration such as `15m` or `1h30m`")
    # Whole milliseconds first, one division last: equal totals give equal floats.
    return sum(int(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(text)) / 1000


def parse_datetime(text: str) -> float:
    """An RFC 3339 timestamp with an offset -> epoch seconds."""
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`{text}` is not an RFC 3339 datetime") from None
    if value.tzinfo is None:
        raise ValueError(f"datetime `{text}` has no time zone offset")
    return value.timestamp()


def format_datetime(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class IPNet:
    """An IP address (full prefix) or a CIDR network."""

    version: int
    value: int
    prefix: int
    # The three fields in one int, so that answers about an address can be kept in a dict cheaply.
    key: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", ((self.value << 8 | self.prefix) << 1) | (self.version == 6))

    @property
    def bits(self) -> int:
        return 32 if self.version == 4 else 128

    def contains(self, other: IPNet) -> bool:
        if other.version != self.version or other.prefix < self.prefix:
            return False
        shift = self.bits - self.prefix
        return (other.value >> shift) == (self.value >> shift)

    def __str__(self) -> str:
        addr = ipaddress.ip_address(self.value) if self.version == 4 else ipaddress.IPv6Address(self.value)
        return str(addr) if self.prefix == self.bits else f"{addr}/{self.prefix}"


@lru_cache(maxsize=8192)
def parse_ip(text: str) -> IPNet:
    """`"10.1.2.3"` or `"10.0.0.0/8"` (host bits must be zero) -> IPNet."""
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=True)
            mapped = net.network_address.ipv4_mapped if isinstance(net, ipaddress.IPv6Network) else None
            if mapped is not None and net.prefixlen >= 96:  # ::ffff:a.b.c.d/N is the IPv4 network /N-96
                return IPNet(4, int(mapped), net.prefixlen - 96)
            return IPNet(net.version, int(net.network_address), net.prefixlen)
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"`{text}` is not an IP address or CIDR network") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; judge them as the IPv4 they are.
        addr = addr.ipv4_mapped
    return IPNet(addr.version, int(addr), addr.max_prefixlen)


class IPSet:
    """Membership in many networks without scanning them: one hash set per prefix length."""

    __slots__ = ("_by_prefix", "_answers")

    def __init__(self, nets: frozenset[IPNet]):
        by_prefix: dict[tuple[int, int], set[int]] = {}
        for net in nets:
            by_prefix.setdefault((net.version, net.prefix), set()).add(net.value >> (net.bits - net.prefix))
        self._by_prefix = tuple(
            (version, (32 if version == 4 else 128) - prefix, prefix, frozenset(keys))
            for (version, prefix), keys in sorted(by_prefix.items())
        )

        # Answers by address: the same clients come back request after request.
        self._answers: dict[int, bool] = {}

    def __contains__(self, ip: IPNet) -> bool:
        found = self._answers.get(ip.key)
        if found is None:
            found = self._scan(ip)
            if len(self._answers) >= 4096:
                self._answers.clear()
            self._answers[ip.key] = found
        return found

    def _scan(self, ip: IPNet) -> bool:
        for version, shift, prefix, keys in self._by_prefix:
            if ip.version == version and ip.prefix >= prefix and (ip.value >> shift) in keys:
                return True
        return False


def glob_pieces(pattern: str) -> tuple[str, ...]:
    """Split a glob on its unescaped stars; `\\*` stands for a literal star."""
    pieces, current, i = [], [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] == "*":
            current.append("*")
            i += 2
            continue
        if ch == "*":
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    pieces.append("".join(current))
    return tuple(pieces)


def glob_match(pattern: str | tuple[str, ...], text: str) -> bool:
    """`*` matches any run of characters, `\\*` a literal star; no regex, linear time."""
    parts = glob_pieces(pattern) if isinstance(pattern, str) else pattern
    if len(parts) == 1:
        return text == parts[0]
    first, *middle, last = parts
    if not text.startswith(first) or len(text) < len(first) + len(last):
        return False
    if not text.endswith(last):
        return False
    pos, stop = len(first), len(text) - len(last)
    for piece in middle:
        found = text.find(piece, pos, stop)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """Weekdays and a time-of-day range in one time zone; the end minute is exclusive."""

    days: frozenset[int]
    start_minute: int
    end_minute: int
    zone: str
    # Answers by whole second: a busy decision point asks about the same second many times, and
    # a local time costs about a microsecond.
    _seconds: dict[float, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def contains(self, epoch: float) -> bool:
        second = epoch // 1
        # Below this fraction, rounding to microseconds cannot carry into the next second (and NaN
        # or infinity never pass: they go to fromtimestamp, which refuses them).
        if epoch - second < 0.999999:
            found = self._seconds.get(second)
            if found is None:
                found = self._local_contains(epoch)
                if len(self._seconds) >= 1024:
                    self._seconds.clear()
                self._seconds[second] = found
            return found
        return self._local_contains(epoch)

    def _local_contains(self, epoch: float) -> bool:
        local = _dt.datetime.fromtimestamp(epoch, _zone(self.zone))
        minute = local.hour * 60 + local.minute
        if self.start_minute <= self.end_minute:
            in_hours = self.start_minute <= minute < self.end_minute
            day = local.weekday()
        else:  # an overnight range such as 22:00-06:00 belongs to the day it started on
            in_hours = minute >= self.start_minute or minute < self.end_minute
            day = local.weekday() if minute >= self.start_minute else (local.weekday() - 1) % 7
        return in_hours and day in self.days


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_days(text: str) -> frozenset[int]:
    """`"mon-fri"`, `"sat,sun"` or `"mon-wed,fri"` -> weekday numbers (Monday = 0)."""
    days: set[int] = set()
    for part in text.replace(" ", "").lower().split(","):
        lo, _, hi = part.partition("-")
        if lo not in _DAYS or (hi and hi not in _DAYS):
            raise ValueError(f"`{text}` is not a list of days such as `mon-fri` or `sat,sun`")
        a, b = _DAYS.index(lo), _DAYS.index(hi or lo)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days)


def parse_hours(text: str) -> tuple[int, int]:
    """`"09:00-18:00"` -> (540, 1080) minutes after midnight."""
    match = re.fullmatch(r"([0-2]?[0-9]):([0-5][0-9])-([0-2]?[0-9]):([0-5][0-9])", text.strip())
    if not match:
        raise ValueError(f"`{text}` is not an hour range such as `09:00-18:00`")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or (h1 == 24 and m1) or (h2 == 24 and m2):
        raise ValueError(f"`{text}` is not an hour range such as `09:00-18:00`")
    return h1 * 60 + m1, h2 * 60 + m2


def check_zone(name: str) -> str:
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"`{name}` is not a known time zone") from None
    return name
