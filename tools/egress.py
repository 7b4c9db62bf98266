"""Where the web tools may connect: the public internet, and private addresses only where `[web] allow_private`
opens them. Loopback (this machine's own services: the runner's web server, Redis, Postgres), private ranges,
link-local (a cloud's metadata address 169.254.169.254) and other non-global addresses are refused by default,
so a playbook — or a page it fetches and follows — cannot reach what sits behind the firewall.

The check is on the address actually connected to, after DNS, for every connection (each redirect hop makes its
own), so a name that resolves to a public address when checked and to a private one when used (DNS rebinding)
gets nowhere: httpx connects through `GuardedBackend`, which resolves the name, vets every address, and connects
to a vetted address itself — TLS still verifies the certificate against the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext

if TYPE_CHECKING:
    import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(ToolArgumentError):
    """The host resolves only to addresses the project keeps tools away from."""

    def __init__(self, host: str, addresses: Iterable[str]) -> None:
        shown = ", ".join(sorted(set(addresses))) or "no address"
        super().__init__("url", _("'{host}' is a private address ({shown}): tools do not connect to this machine, "
                                  "the local network or cloud metadata unless [web] allow_private in playbook.toml "
                                  "names it (e.g. allow_private = [\"{host}\"] or a range like \"10.0.0.0/8\")").format(
                                    host=host, shown=shown))


@dataclass(frozen=True)
class EgressPolicy:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, ctx: ToolContext) -> EgressPolicy:
        return cls.from_entries(getattr(getattr(ctx.settings, "web", None), "allow_private", []) or [])

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> EgressPolicy:
        networks, names = [], []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names.append(entry.strip().lower().rstrip("."))
        return cls(tuple(networks), tuple(names))

    def name_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == name or host.endswith("." + name) for name in self.names)

    def address_allowed(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_global and not address.is_multicast:
            return True
        return any(address in network for network in self.networks)

    async def vetted(self, host: str, port: int) -> list[str]:
        """The addresses of `host` a tool may connect to, in resolver order; EgressRefused when none."""
        try:
            literal: Address | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            found = [str(literal)]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if self.name_allowed(host):
            return found
        allowed = [a for a in found if self.address_allowed(ipaddress.ip_address(a.split("%")[0]))]
        if not allowed:
            raise EgressRefused(host, found)
        return allowed


class GuardedBackend:
    """An httpcore network backend that connects only to addresses the policy allows (the default backend
    underneath does the rest: TLS, timeouts, sockets)."""

    def __init__(self, policy: EgressPolicy) -> None:
        import httpcore

        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> Any:
        import httpcore

        try:
            addresses = await asyncio.wait_for(self.policy.vetted(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(_("resolving {host} took longer than {timeout} s").format(
                                              host=host, timeout=timeout)) from None
        except OSError as exc:  # the name does not resolve
            raise httpcore.ConnectError(_("cannot resolve {host}: {exc}").format(host=host, exc=exc)) from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise EgressRefused(path, [])

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(ctx: ToolContext) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection passes the project's egress policy."""
    import httpcore
    import httpx

    transport = httpx.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool  # the same pool httpx builds, on the guarded backend (httpx has no parameter for it)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context, max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections, keepalive_expiry=pool._keepalive_expiry,
        http1=pool._http1, http2=pool._http2,
        # GuardedBackend has the backend's methods; it is not a subclass only so httpcore loads when first used
        network_backend=cast("httpcore.AsyncNetworkBackend", GuardedBackend(EgressPolicy.of(ctx))))
    return transport


def refused_by_policy(exc: BaseException) -> EgressRefused | None:
    """The EgressRefused inside an httpx error (httpx wraps what the backend raised), if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EgressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
