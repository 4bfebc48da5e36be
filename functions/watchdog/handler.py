"""Watchdog function: record a missed run, and alert, for every source with no recorded run for two
of its periods, or none since it was deployed (driftguard.watchdog). EventBridge Scheduler invokes
it every 5 minutes.

Thin by design: Powertools for logging and tracing; the decision is driftguard.watchdog, the
recording and delivery driftguard.lambda_runtime.watchdog (the same engine as the CLI).
"""

from __future__ import annotations

from typing import Any

from driftguard.lambda_init import long_lived

with long_lived():
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from driftguard import lambda_runtime as runtime

    logger = Logger()
    # botocore (DynamoDB, SNS, SES, Secrets Manager) and PynamoDB: all this function calls.
    tracer = Tracer(patch_modules=("botocore", "pynamodb"))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = runtime.watchdog(
        runtime.runtime(),
        event,
        claimer=f"lambda:{context.aws_request_id}",
        remaining_ms=context.get_remaining_time_in_millis(),
    )
    if result["overdue"]:
        logger.warning("sources without a recorded run", extra=result)
    return result
