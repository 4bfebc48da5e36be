"""Notification channels and reliable delivery.

`build_channel(cfg, secrets=...)` turns a configured channel into a `ChannelAdapter`;
`deliver(notification, adapter, max_attempts=...)` sends it with retries and returns a
DeliveryRecord (FAILED records keep the notification for replay). `render` words every format.
Heavy client libraries (boto3, slack_sdk, standardwebhooks) are imported only by the channel
that needs them.
"""

from driftguard.notify.base import ChannelAdapter
from driftguard.notify.channels import ChannelConfig, build_channel
from driftguard.notify.delivery import backoff_delay, deliver
from driftguard.notify.web import AddressGuard

__all__ = ["AddressGuard", "ChannelAdapter", "ChannelConfig", "backoff_delay", "build_channel", "deliver"]
