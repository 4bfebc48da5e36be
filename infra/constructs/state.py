"""DynamoDB: the state table (the store's single-table design) and the idempotency table.

* State table (DRIFTGUARD_STATE_TABLE): string keys `pk`/`sk`; the store
  (driftguard.store.dynamodb) owns the item layout. TTL on `expires_at` (epoch seconds), which
  the store writes from `aws.retention_days`, so snapshots and history expire on their own.
* Idempotency table (DRIFTGUARD_IDEMPOTENCY_TABLE): the shape Powertools'
  `DynamoDBPersistenceLayer` uses by default, partition key `id` and TTL on `expiration`, so the
  handler needs no key-name configuration. A separate table keeps Powertools' records (which
  hold whole check results) out of the store's keys and lets their TTL be hours, not months.

Both: PAY_PER_REQUEST (checks are bursty and mostly idle), point-in-time recovery, AWS-managed
encryption, RETAIN (the alert history outlives `cdk destroy`; idempotency records are cheap).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb

from constructs import Construct

STATE_TTL_ATTRIBUTE = "expires_at"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"


def _table(
    scope: Construct, construct_id: str, ttl: str, key: str, sort_key: str | None = None
) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING) if sort_key else None,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=ttl,
        removal_policy=RemovalPolicy.RETAIN,
    )


class StateTables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.state = _table(self, "StateTable", STATE_TTL_ATTRIBUTE, "pk", "sk")
        self.idempotency = _table(self, "IdempotencyTable", IDEMPOTENCY_TTL_ATTRIBUTE, "id")
