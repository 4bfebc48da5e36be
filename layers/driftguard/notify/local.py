"""Channels that need nothing but the local machine: a terminal stream and a JSON-lines file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from driftguard.errors import DeliveryError
from driftguard.model import Notification
from driftguard.notify import render
from driftguard.notify.base import ChannelAdapter

_RULE = "─" * 72

if sys.platform == "win32":

    def _lock_exclusive(f: IO[str]) -> None:
        """No advisory locks on Windows: duplicate suppression then assumes one writer at a time."""

else:
    import fcntl

    def _lock_exclusive(f: IO[str]) -> None:
        """Until the file is closed: the duplicate scan and the append happen as one step."""
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)


class ConsoleAdapter(ChannelAdapter):
    """Plain text to a stream (stdout by default, looked up at send time so redirection works)."""

    def __init__(self, name: str, stream: IO[str] | None = None) -> None:
        super().__init__(name)
        self._stream = stream

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        stream = self._stream or sys.stdout
        text = f"{_RULE}\n{render.plain_text(notification)}"
        encoding = getattr(stream, "encoding", None)
        if encoding:  # a legacy terminal encoding must not turn a notification into a crash
            text = text.encode(encoding, errors="replace").decode(encoding)
        try:
            stream.write(text)
            stream.flush()
        except OSError as e:
            raise DeliveryError(f"console channel {self.name!r}: cannot write: {e}", retryable=False) from e


class FileAdapter(ChannelAdapter):
    """Appends one JSON object per notification (plus `idempotency_key`) to a JSON-lines file.

    An exclusive lock covers the duplicate scan and the append, so two processes delivering the
    same notification write it once. Each line is flushed and fsynced before `send` returns.
    """

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        record: dict[str, Any] = {**render.json_payload(notification), "idempotency_key": idempotency_key}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+", encoding="utf-8") as f:
                _lock_exclusive(f)
                f.seek(0)
                content = f.read()
                if idempotency_key in _keys_in(content):
                    return
                if content and not content.endswith("\n"):  # a torn last line must not swallow ours
                    line = "\n" + line
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            permanent = isinstance(e, PermissionError | IsADirectoryError | NotADirectoryError)
            raise DeliveryError(
                f"file channel {self.name!r}: cannot write {self.path}: {e}", retryable=not permanent
            ) from e


def _keys_in(content: str) -> set[str]:
    keys: set[str] = set()
    for raw in content.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a torn line from a crashed writer: its notification was not delivered
        if isinstance(record, dict) and isinstance(record.get("idempotency_key"), str):
            keys.add(record["idempotency_key"])
    return keys
