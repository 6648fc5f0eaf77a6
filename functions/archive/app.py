"""Archive job entry points: ``handler`` (AWS Lambda) and ``main_handler`` (Tencent SCF), the same function.

Invocations: Lambda function URL / API Gateway and SCF API gateway / function URL callbacks → an HTTP response dict
(the integration response on SCF); SQS batches of callbacks (NotifyType AWS-SQS) → ``{"batchItemFailures": [...]}``;
the SCF MPS trigger → a summary dict, or an exception so SCF retries. All logic lives in the core layer.
"""
from mps_triggers import archive_job


def handler(event, context):
    return archive_job.run(event, context).respond()


main_handler = handler
