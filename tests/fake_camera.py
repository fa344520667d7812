"""A camera for the browser tests: Chromium films a video file instead of a real camera.

Chromium started with `--use-fake-device-for-media-stream --use-file-for-fake-video-capture=
<file.y4m>` (and `--use-fake-ui-for-media-stream`, which grants the camera without asking)
gives pages that file as the camera's picture, looped. `y4m_of` makes such a file from a
picture (a QR code the node made, say), laid on a white frame as a counter would show it.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

FRAME = (640, 480)  # what a cheap phone's camera gives a page by default


def camera_args(video: Path) -> list[str]:
    """Chromium's flags to film `video` with a camera the page may use without asking."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


def frame_of(picture: bytes, size: tuple[int, int] = FRAME, fill: float = 0.7) -> Image.Image:
    """The picture (PNG or JPEG bytes) centred on a white frame of `size`, scaled to fill
    `fill` of its height with whole pixels kept sharp."""
    shown = Image.open(io.BytesIO(picture)).convert("RGB")
    side = int(size[1] * fill)
    scale = max(1, side // max(shown.size))
    shown = shown.resize((shown.width * scale, shown.height * scale), Image.Resampling.NEAREST)
    frame = Image.new("RGB", size, "white")
    frame.paste(shown, ((size[0] - shown.width) // 2, (size[1] - shown.height) // 2))
    return frame


def y4m_of(picture: bytes, path: Path, *, frames: int = 10, fps: int = 10) -> Path:
    """Write `path`: a YUV4MPEG2 video (4:2:0, the layout Chromium reads) of `frames` frames
    at `fps`, each the picture on a white frame (see `frame_of`). Returns `path`."""
    frame = frame_of(picture)
    width, height = frame.size
    if width % 2 or height % 2:
        raise ValueError("4:2:0 halves the chroma planes: the frame's sides must be even")
    luma, blue, red = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    planes = (
        luma.tobytes()
        + blue.resize(half, Image.Resampling.BOX).tobytes()
        + red.resize(half, Image.Resampling.BOX).tobytes()
    )
    header = f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + (b"FRAME\n" + planes) * frames)
    return path
