"""VOD job entry points: ``handler`` (AWS Lambda) and ``main_handler`` (Tencent SCF), the same function.

Invocations: a VOD normal callback (function URL / API gateway, one event) → an HTTP response dict (the integration
response on SCF); a scheduled poll (SCF timer trigger, EventBridge Scheduler) → PullEvents, archive, submit,
ConfirmEvents, and a summary dict. All logic lives in the core layer (``mps_triggers.vod_job``).
"""
from mps_triggers import vod_job


def handler(event, context):
    return vod_job.run(event, context).respond()


main_handler = handler
