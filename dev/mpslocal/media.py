"""Real media files for the demo and tests: short valid MP4 clips made at run time with imageio-ffmpeg's ffmpeg."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

PATTERNS = ("testsrc", "testsrc2", "smptebars", "rgbtestsrc", "smptehdbars", "yuvtestsrc")


def make_clip(seconds: float = 1.0, variant: int = 0, size: str = "160x120", rate: int = 10) -> bytes:
    """A valid H.264 MP4 of ``seconds`` (about 5 KB per second at 160x120). ``variant`` picks the picture, so
    different variants give different bytes (and different ETags)."""
    import imageio_ffmpeg

    pattern = PATTERNS[variant % len(PATTERNS)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi",
                        "-i", f"{pattern}=duration={seconds + variant // len(PATTERNS) * 0.1}:size={size}:rate={rate}",
                        "-pix_fmt", "yuv420p", "-y", str(out)], check=True)
        return out.read_bytes()


def is_mp4(data: bytes) -> bool:
    """True for an ISO base media file (an ``ftyp`` box first)."""
    return len(data) > 12 and data[4:8] == b"ftyp"
