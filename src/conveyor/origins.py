"""Web origins (`scheme://host[:port]`) as a browser sends them in `Origin`, compared the way
the API's browser guard compares them. Plain stdlib, so settings can validate them too."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def _split(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if (parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path
            or parts.query or parts.fragment or parts.username or parts.password):
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def normalize_origin(origin: str) -> str | None:
    """Lower case, default port dropped; None for anything that is not an http(s) origin
    (the `null` of a sandboxed or privacy-stripped page included)."""
    split = _split(origin)
    if split is None:
        return None
    scheme, host, port = split
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")


def same_host(origin: str, host_header: str | None) -> bool:
    """Whether `origin` names the host and port the request was sent to (its `Host`). The
    scheme is not compared: behind a TLS-terminating proxy the page is https, the hop http."""
    split = _split(origin)
    if split is None or not host_header:
        return False
    scheme, host, port = split
    try:
        target = urlsplit("//" + host_header.strip())
        target_port = target.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return False
    return target.hostname == host and target_port == port
