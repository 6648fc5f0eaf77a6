"""mps_triggers: object storage (S3, COS) → Tencent Cloud MPS ProcessMedia, and MPS callbacks → JSONL archive.

Modules are imported on demand (cold start matters): import what you use. The functions' handlers are one line
each (``functions/*/app.py``: ``submit.run(event, context).respond()``); the same rules run anywhere, e.g. the
SessionId the submit job gives an S3 upload (its notification parsed as the function parses it; no network)::

    >>> from mps_triggers.uploads import parse_upload_event
    >>> from mps_triggers.session import session_id, session_context
    >>> event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "us-east-1",
    ...     "s3": {"bucket": {"name": "media"}, "object": {"key": "in/a+b.mp4", "size": 5412, "eTag": "9b2cf535"}}}]}
    >>> [obj] = parse_upload_event(event).records[0].objects
    >>> obj.key                      # URL-decoded as S3 notifications require
    'in/a b.mp4'
    >>> session_id(obj)              # the same object version always gets the same id: MPS refuses a repeat
    'mt1-4d30b2783e5d703bf8decc91610ab4f274bd1e67'
    >>> session_context(obj, "videos")
    '{"v":1,"src":"s3","b":"media","k":"in/a b.mp4","r":"videos"}'
"""
__version__ = "0.1.0"
