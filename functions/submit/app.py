"""Submit job entry points: ``handler`` (AWS Lambda) and ``main_handler`` (Tencent SCF), the same function.

Invocations: SQS batches (S3 notifications, SNS-wrapped, EventBridge bodies) → ``{"batchItemFailures": [...]}``;
direct S3, SNS, EventBridge and SCF COS triggers → a summary dict, or an exception when any record failed so the
platform retries (safe: MPS rejects a repeated SessionId). All logic lives in the core layer (mps_triggers).
"""
from mps_triggers import submit


def handler(event, context):
    return submit.run(event, context).respond()


main_handler = handler
