"""DynamoDB: the state table (the store's single-table design) and the idempotency table.

* State table (DRIFTGUARD_STATE_TABLE): string keys `pk`/`sk`; the store
  (driftguard.store.dynamodb) owns the item layout. TTL on `expires_at` (epoch seconds), which
  the store writes from `aws.retention_days`, so snapshots and history expire on their own.
* Idempotency table (DRIFTGUARD_IDEMPOTENCY_TABLE): the shape Powertools'
  `DynamoDBPersistenceLayer` uses by default, partition key `id` and TTL on `expiration`, so the
  handler needs no key-name configuration. A separate table keeps Powertools' records (which
  hold whole check results) out of the store's keys and lets their TTL be hours, not months.

Both: PAY_PER_REQUEST (checks are bursty and mostly idle), point-in-time recovery, AWS-managed
encryption. The state table is the only resource kept by `cdk destroy` (RETAIN: the alert
history and the learned baselines outlive the stack); it has no fixed name, so a new deploy creates
a new table and never collides with the kept one. To re-attach a kept table, import it into the new
stack (`cdk import`, docs/deploy.md "Re-attaching a kept state table"). The idempotency table
holds records of at most 6 hours and is deleted with the stack.

The functions get only the DynamoDB actions the code calls (tests/infra/test_least_privilege.py
reads driftguard/store/dynamodb.py to keep the lists honest): no Scan (only the CLI's operator
listings scan), no BatchWriteItem, no stream actions.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb

from constructs import Construct

STORE_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem")
STORE_WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:UpdateItem",
)
"""TransactWriteItems is authorized per item action (PutItem, DeleteItem, ConditionCheckItem); the
delivery ledger claims and marks a notification with a conditional UpdateItem."""
IDEMPOTENCY_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
"""What Powertools' DynamoDBPersistenceLayer calls."""

STATE_TTL_ATTRIBUTE = "expires_at"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"


def _table(
    scope: Construct,
    construct_id: str,
    ttl: str,
    key: str,
    sort_key: str | None = None,
    *,
    removal_policy: RemovalPolicy,
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
        removal_policy=removal_policy,
    )


class StateTables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.state = _table(
            self, "StateTable", STATE_TTL_ATTRIBUTE, "pk", "sk", removal_policy=RemovalPolicy.RETAIN
        )
        self.idempotency = _table(
            self, "IdempotencyTable", IDEMPOTENCY_TTL_ATTRIBUTE, "id", removal_policy=RemovalPolicy.DESTROY
        )
