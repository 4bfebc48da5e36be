"""State backends behind the Store port. `open_store` picks one from a state URL:

- a path or `sqlite:///path/to/state.db` -> the local SQLite store (the embedded default)
- `dynamodb://TABLE?region=eu-west-1`     -> the DynamoDB store (needs the `aws` extra)
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from driftguard.errors import ConfigError
from driftguard.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, *, retention: timedelta | None = None, create: bool = True) -> Store:
    """The store at `url`. For SQLite: `retention` prunes history as runs commit; `create=False`
    refuses to create a missing file (StateMissing). DynamoDB expires history by its own TTL."""
    if url.startswith("dynamodb://"):
        parsed = urlparse(url)
        table = parsed.netloc or parsed.path.lstrip("/")
        if not table:
            raise ConfigError(f"state URL {url!r} names no table: write dynamodb://TABLE?region=REGION")
        region = parse_qs(parsed.query).get("region", [None])[0]
        from driftguard.store.dynamodb import DynamoStore

        return DynamoStore(table_name=table, region=region)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    from driftguard.store.sqlite import SqliteStore

    return SqliteStore(path, retention=retention, create=create)
