"""State backends behind the Store port. `open_store` picks one from a state URL:

- a path or `sqlite:///path/to/state.db` -> the local SQLite store (the embedded default)
- `dynamodb://TABLE?region=eu-west-1`     -> the DynamoDB store (needs the `aws` extra)

Any other `scheme://` is refused: taken as a file name it would create a stray `scheme:` folder.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from driftguard.errors import ConfigError
from driftguard.store.base import Store

__all__ = ["StateNotFound", "Store", "open_store"]


class StateNotFound(ConfigError):
    """A command that only reads was pointed at a state file that does not exist."""


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(url: str, *, retention: timedelta | None = None, create: bool = True) -> Store:
    """The store at `url`. For SQLite: `retention` prunes history as runs commit; with `create=False`
    (commands that only read) a file that does not exist is an error naming it, instead of a new
    empty state. DynamoDB expires history by its own TTL."""
    if url.startswith("dynamodb://"):
        parsed = urlparse(url)
        table = parsed.netloc or parsed.path.lstrip("/")
        if not table:
            raise ConfigError(f"state URL {url!r} names no table: write dynamodb://TABLE?region=REGION")
        region = parse_qs(parsed.query).get("region", [None])[0]
        from driftguard.store.dynamodb import DynamoStore

        return DynamoStore(table_name=table, region=region)
    scheme = _SCHEME_RE.match(url)
    if scheme and not url.startswith("sqlite:///"):
        raise ConfigError(
            f"state URL {url!r}: unknown scheme {scheme.group(1)!r}; use a file path, "
            "sqlite:///PATH or dynamodb://TABLE?region=REGION"
        )
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if not create and not Path(path).expanduser().is_file():
        raise StateNotFound(
            f"state file {path} does not exist: check --state or the config's state.path "
            "(`driftguard run` creates it on the first run)"
        )
    from driftguard.store.sqlite import SqliteStore

    return SqliteStore(path, retention=retention, create=create)
