"""HTTP with a total time budget per call, for the MPS client and the webhook client.

**Why a budget.** httpx's ``timeout`` bounds each socket operation, not the request: a peer that trickles one byte
every half second keeps a request alive for as long as it likes (seen: 15 s and 99 s with a 4 s timeout). Here
every read, write, connect and TLS handshake of a call is given at most the time left of the call's budget (an
``httpcore`` network backend that consults the budget of the calling thread), so :meth:`BudgetedClient.post`
returns or raises ``httpx.TimeoutException`` within its budget, however the peer behaves.

Retries are the caller's (:mod:`mps_triggers.retries`). httpx is imported with this module: import it when the
first client is made, not at cold start.

Example::

    client = BudgetedClient("https://mps.tencentcloudapi.com/", max_connections=10)
    resp = client.post("https://mps.tencentcloudapi.com/", content=b"{}", headers={...}, budget=5.0)
"""
from __future__ import annotations

import threading
import time
from typing import Any
from urllib.request import getproxies, proxy_bypass

import httpcore
import httpx

_call = threading.local()  # .end: time.monotonic() by which the current thread's HTTP call must be over


def _left(exc_type: type[Exception], timeout: float | None) -> float | None:
    """The timeout for one socket operation: ``timeout`` capped by what is left of the thread's call budget."""
    end = getattr(_call, "end", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise exc_type("the call's total time budget is spent")
    return left if timeout is None else min(timeout, left)


class _BudgetStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the calling thread's budget."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(httpcore.ReadTimeout, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(httpcore.WriteTimeout, timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _BudgetStream(self._stream.start_tls(ssl_context, server_hostname,
                                                    _left(httpcore.ConnectTimeout, timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BudgetBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, with every stream it opens bounded by the calling thread's budget."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _BudgetStream(self._backend.connect_tcp(host, port, _left(httpcore.ConnectTimeout, timeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _BudgetStream(self._backend.connect_unix_socket(path, _left(httpcore.ConnectTimeout, timeout),
                                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _BudgetTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool (direct, or through the environment's HTTP(S) proxy for ``url``)
    that uses :class:`_BudgetBackend`."""

    def __init__(self, url: str, limits: httpx.Limits) -> None:  # noqa: D107 (HTTPTransport.__init__ would only
        # build a pool and an SSL context that this one replaces: not called, to keep the cold start short)
        common: dict[str, Any] = dict(ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
                                      max_keepalive_connections=limits.max_keepalive_connections,
                                      keepalive_expiry=limits.keepalive_expiry, network_backend=_BudgetBackend())
        target = httpx.URL(url)
        proxy = getproxies().get(target.scheme)
        if proxy and not proxy_bypass(target.host) and proxy.startswith(("http://", "https://")):
            p = httpx.URL(proxy)
            self._pool = httpcore.HTTPProxy(proxy_url=httpcore.URL(scheme=p.raw_scheme, host=p.raw_host,
                                                                   port=p.port, target=p.raw_path), **common)
        else:
            self._pool = httpcore.ConnectionPool(**common)


class BudgetedClient:
    """One reusable ``httpx.Client`` for ``url``'s host whose calls each end within a total budget (thread-safe;
    create once per container). ``max_connections`` bounds the pool."""

    def __init__(self, url: str, max_connections: int = 10, user_agent: str = "mps-triggers/0.1") -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(transport=_BudgetTransport(url, limits), headers={"User-Agent": user_agent},
                                    follow_redirects=False)

    def post(self, url: str, *, content: bytes, headers: dict[str, str], budget: float) -> httpx.Response:
        """POST ``content`` and read the whole answer within ``budget`` seconds (connect, send, every read).

        Raises ``httpx.TimeoutException`` when the budget runs out (or is ≤ 0: nothing is sent), and
        ``httpx.TransportError`` for other network failures.
        """
        if budget <= 0:
            raise httpx.ConnectTimeout("no time left in the invocation for this call")
        previous = getattr(_call, "end", None)
        _call.end = time.monotonic() + budget
        try:
            return self._client.post(url, content=content, headers=headers, timeout=budget)
        finally:
            _call.end = previous

    def close(self) -> None:
        self._client.close()
