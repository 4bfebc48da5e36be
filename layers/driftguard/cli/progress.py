"""Per-table progress on a terminal: collectors say which table they start, a display listens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from driftguard.config import Source, TableConfig
from driftguard.engine import CollectorFactory
from driftguard.secrets import SecretResolver

Listener = Callable[[str, str], None]  # (source, table)


class TableProgress:
    """Where the collectors of one command report; `listener` is set while a display is shown."""

    def __init__(self) -> None:
        self.listener: Listener | None = None

    def table_started(self, source: str, table: str) -> None:
        if self.listener is not None:
            self.listener(source, table)

    def collector_factory(self) -> CollectorFactory:
        from driftguard.collect.collector import Collector

        progress = self

        class ReportingCollector(Collector):
            # Only the table matters here: the rest is passed on as the collector takes it.
            def _collect_table(self, table: TableConfig, *args: Any, **kwargs: Any) -> Any:
                progress.table_started(self.source.name, table.name)
                return super()._collect_table(table, *args, **kwargs)

        def factory(source: Source, timeout: timedelta, secrets: SecretResolver) -> Any:
            return ReportingCollector(source, statement_timeout=timeout, secrets=secrets)

        return factory
