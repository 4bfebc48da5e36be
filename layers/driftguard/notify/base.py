"""The one interface every notification channel implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from driftguard.model import Notification


class ChannelAdapter(ABC):
    """Delivers a notification to one configured channel.

    `send` either returns (delivered) or raises `DeliveryError`: `retryable=True` when trying again
    later can help (throttling, 5xx, timeouts, connection failures), with `retry_after` seconds when
    the receiver said how long to wait; `retryable=False` when it cannot (4xx, refused target).
    `idempotency_key` is the same on every attempt for one notification; channels that can
    deduplicate (file, FIFO SNS, webhook receivers via `webhook-id`) use it.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def send(self, notification: Notification, *, idempotency_key: str) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
