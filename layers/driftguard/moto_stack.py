"""The resources the deployed stack gives the handlers, created in an AWS stand-in (moto): for
`driftguard invoke --mock-aws`, the end-to-end tests and the cost benchmark, so all three run the
handlers against the same shapes the CDK stack creates (infra/constructs/state.py, notifications.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ALERTS_TOPIC = "driftguard-alerts"
DELIVERY_DLQ = "driftguard-delivery-dlq"


@dataclass(frozen=True)
class StackResources:
    """What the handlers find in DRIFTGUARD_ALERTS_TOPIC_ARN and DRIFTGUARD_DLQ_URL."""

    topic_arn: str
    dlq_url: str


def create_stack_resources(
    *,
    region: str,
    state_table: str,
    idempotency_table: str,
    secrets: Mapping[str, str] | None = None,
    topic_names: Iterable[str] = (),
) -> StackResources:
    """The state table, Powertools' idempotency table (key `id`), the alerts topic (plus any other
    topics by name), the delivery dead-letter queue, and the given Secrets Manager secrets."""
    import boto3

    from driftguard.store.dynamodb import DynamoStore

    DynamoStore(table_name=state_table, region=region).create_table()
    boto3.client("dynamodb", region_name=region).create_table(
        TableName=idempotency_table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    sns = boto3.client("sns", region_name=region)
    topic_arn = sns.create_topic(Name=ALERTS_TOPIC)["TopicArn"]
    for name in topic_names:
        sns.create_topic(Name=name)
    dlq_url = boto3.client("sqs", region_name=region).create_queue(QueueName=DELIVERY_DLQ)["QueueUrl"]
    secrets_manager = boto3.client("secretsmanager", region_name=region)
    for name, value in (secrets or {}).items():
        secrets_manager.create_secret(Name=name, SecretString=value)
    return StackResources(topic_arn=topic_arn, dlq_url=dlq_url)
