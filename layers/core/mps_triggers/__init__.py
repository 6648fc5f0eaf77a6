"""mps_triggers: object storage (S3, COS) → Tencent Cloud MPS ProcessMedia, and MPS callbacks → JSONL archive.

Modules are imported on demand (cold start matters): import what you use, e.g.
``from mps_triggers.submit import handle_upload_event``.
"""
__version__ = "0.1.0"
