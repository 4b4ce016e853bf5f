"""The building blocks every section of the site model shares: the frozen model base, the checked name types
and the URL check (ground floor: imports only `aifw.names`)."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from .names import SLURM_NAME, UNIX_USER

# Names that end up in Slurm commands and batch scripts: conservative on purpose (aifw.names).
SlurmName = Annotated[str, Field(pattern=SLURM_NAME)]
UnixUser = Annotated[str, Field(pattern=UNIX_USER)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def plain_url(value: str, *, example: str, query: bool, plain_http_refused) -> str:
    """An http(s) URL with a host and no user, password, fragment or spaces (a query only where `query`).
    Plain http is for this host only: elsewhere `plain_http_refused(parsed)` says why it is refused."""
    parsed = urlsplit(value)
    try:
        parsed.port
    except ValueError as err:
        raise ValueError(f"expected a URL like {example}; {err}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.username or parsed.password \
            or parsed.fragment or (parsed.query and not query) or any(c.isspace() for c in value):
        raise ValueError(f"expected a URL like {example} (no user, spaces or fragment"
                         + ("" if query else ", no query") + ")")
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
        raise ValueError(plain_http_refused(parsed))
    return value
