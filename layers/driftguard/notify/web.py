"""HTTP plumbing shared by the Slack and webhook channels: the SSRF guard, a POST that connects
only to vetted addresses and never follows redirects, and the mapping of status codes to
retryable or permanent DeliveryErrors.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from driftguard.errors import DeliveryError

USER_AGENT = "DriftGuard-notify/1"
_MAX_ERROR_BODY = 300

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved, unspecified and shared
    addresses, looking through IPv4-mapped and 6to4 IPv6 forms to the IPv4 address inside."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class AddressGuard:
    """Refuses targets that resolve to non-public addresses unless `allow_private`.

    Inject `resolve` in tests (no DNS); set `allow_private=True` for a channel whose target is
    deliberately internal (the webhook channel's `allow_private: true`, or a local test server).
    """

    resolve: Resolver = system_resolver
    allow_private: bool = False

    def vet(self, url: str) -> list[str]:
        """The addresses `url`'s host may be reached at; raises a permanent DeliveryError otherwise."""
        host, port = host_and_port(url)
        try:
            addresses = self.resolve(host, port)
        except OSError as e:
            raise DeliveryError(f"cannot resolve {host}: {e}", retryable=True) from e
        if not addresses:
            raise DeliveryError(f"{host} resolved to no address", retryable=True)
        refused = [a for a in addresses if not is_public_address(a)]
        if refused and not self.allow_private:
            raise DeliveryError(
                f"refusing to send to {host}: it resolves to non-public address(es) {', '.join(refused)}; "
                "set allow_private: true on the channel if this internal target is intended",
                retryable=False,
            )
        return addresses


def host_and_port(url: str) -> tuple[str, int]:
    """The host (IPv6 literals without brackets) and port (the scheme's default if none) of an
    http(s) URL; a permanent DeliveryError for anything else."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # out of range or not a number
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise DeliveryError(
            f"refusing {_redact(url)}: only http(s) URLs with a host are allowed", retryable=False
        )
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _redact(url: str) -> str:
    """scheme://host/… : enough to recognise a target without printing path tokens (Slack URLs)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def raise_for_status(status: int, headers: Mapping[str, str], body: str, *, what: str) -> None:
    """2xx returns; 408, 429 and 5xx are retryable (honouring Retry-After); 3xx and other 4xx are
    permanent: a redirect is never followed, so it would fail the same way every time."""
    if 200 <= status < 300:
        return
    detail = f"{what} answered HTTP {status}"
    if body:
        detail += f": {' '.join(body.split())[:_MAX_ERROR_BODY]}"
    if status in (408, 429) or status >= 500:
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        raise DeliveryError(detail, retryable=True, retry_after=parse_retry_after(retry_after))
    if 300 <= status < 400:
        detail += "; redirects are not followed: configure the final URL"
    raise DeliveryError(detail, retryable=False)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to addresses the guard already vetted instead of resolving the host again, so a
    DNS answer that changes between check and connect (rebinding) cannot reach a private address.
    The Host header, TLS SNI and certificate check still use the URL's host name."""

    def __init__(self, host: str, port: int, *, timeout: float, pinned: list[str]) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned = tuple(pinned)
        # http.client picks its connector per instance in __init__; replace it after that
        self._create_connection = self._connect_pinned

    def _connect_pinned(
        self, address: tuple[str, int], timeout: float | None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        last: OSError = OSError(f"no vetted address for {address[0]}")
        for ip in self.pinned:
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as e:
                last = e
        raise last


class _PinnedHTTPSConnection(_PinnedHTTPConnection, http.client.HTTPSConnection):
    pass


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, guard: AddressGuard
) -> HttpResponse:
    """POST `body` to `url` through the guard. Network failures and timeouts raise retryable
    DeliveryErrors; the response is returned whatever its status (see `raise_for_status`)."""
    addresses = guard.vet(url)
    host, port = host_and_port(url)  # without a port, http.client splits an IPv6 literal at its last ":"
    parts = urlsplit(url)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(host, port, timeout=timeout, pinned=addresses)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", target, body=body, headers={"User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        text = response.read(64 * 1024).decode("utf-8", errors="replace")
        return HttpResponse(response.status, dict(response.getheaders()), text)
    except ssl.SSLCertVerificationError as e:
        raise DeliveryError(f"{host}: TLS certificate not trusted: {e}", retryable=False) from e
    except TimeoutError as e:
        raise DeliveryError(f"{host} did not answer within {timeout:g}s", retryable=True) from e
    except (OSError, http.client.HTTPException) as e:
        raise DeliveryError(f"cannot reach {host}: {type(e).__name__}: {e}", retryable=True) from e
    finally:
        conn.close()
