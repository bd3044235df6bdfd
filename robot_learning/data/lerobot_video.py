"""Camera streams of a LeRobot v3 dataset: RGB frames to and from mp4 files through the ffmpeg that
``imageio-ffmpeg`` ships (raw frames over a pipe, so no PyAV or torchcodec is needed here).

Codecs (``VIDEO_CODECS``), chosen per export:

- ``lossless`` (default): H.264 RGB (``libx264rgb``, ``-qp 0``, pixel format ``gbrp``). Every pixel comes back
  bit-exact, so a store exported and imported again has the same fingerprint. PyAV, torchcodec (what LeRobot
  decodes with) and ffmpeg decode it; browsers do not play 4:4:4 H.264, so the Hub's web viewer shows nothing.
- ``h264``: H.264 ``yuv420p`` at CRF 18, the usual web video: about 4x smaller on the demo's 96x96 frames but
  lossy (chroma halved, quantised); a round trip keeps images to a few grey levels on average.
- ``av1``: SVT-AV1 ``yuv420p`` at CRF 30, LeRobot's own default; the smallest and lossy.

Every file is constant frame rate from time 0, with a keyframe every 2 frames (LeRobot's ``g=2``) so a random
frame decodes quickly; frame ``k`` of a file is shown at ``k / fps`` seconds, which is how LeRobot finds an
episode's frames (``from_timestamp + frame_index / fps``).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

VIDEO_CODECS: dict[str, dict[str, object]] = {
    "lossless": {"args": ["-c:v", "libx264rgb", "-qp", "0", "-preset", "veryfast", "-pix_fmt", "rgb24"],
                 "codec": "h264", "pix_fmt": "gbrp", "lossless": True},
    "h264": {"args": ["-c:v", "libx264", "-crf", "18", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
             "codec": "h264", "pix_fmt": "yuv420p", "lossless": False},
    "av1": {"args": ["-c:v", "libsvtav1", "-crf", "30", "-preset", "8", "-pix_fmt", "yuv420p"],
            "codec": "av1", "pix_fmt": "yuv420p", "lossless": False},
}
GOP_FRAMES = 2


class VideoError(RuntimeError):
    """ffmpeg failed to encode or decode a file; the message holds ffmpeg's own last lines."""


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - the 'lerobot' extra installs it
        raise VideoError("LeRobot videos need imageio-ffmpeg (pip install -e '.[lerobot]')") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def _tail(log) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "no message"


class VideoWriter:
    """One mp4 being written: RGB uint8 (H, W, 3) frames in, at ``fps``; ``close`` finishes the file."""

    def __init__(self, path: Path, width: int, height: int, fps: int, codec: str = "lossless") -> None:
        if codec not in VIDEO_CODECS:
            raise ValueError(f"video codec {codec!r} is not one of {sorted(VIDEO_CODECS)}")
        if codec != "lossless" and (width % 2 or height % 2):
            raise ValueError(f"{codec} (yuv420p) needs even image sizes, got {width}x{height}; "
                             "use --video-codec lossless")
        self.path, self.shape, self.n_frames = Path(path), (height, width, 3), 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - ffmpeg's stderr for as long as it runs
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", *VIDEO_CODECS[codec]["args"],  # type: ignore[list-item]
               "-g", str(GOP_FRAMES), "-r", str(fps), "-an", "-movflags", "+faststart", str(self.path)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frames: np.ndarray) -> None:
        """Append frames (T, H, W, 3) or one (H, W, 3), uint8 RGB."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.shape[1:] != self.shape:
            raise ValueError(f"{self.path.name}: frames must be uint8 {self.shape}, "
                             f"got {frames.dtype} {frames.shape[1:]}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())  # type: ignore[union-attr]
        except BrokenPipeError:
            self._proc.wait()
            raise VideoError(f"ffmpeg stopped while writing {self.path}: {_tail(self._log)}") from None
        self.n_frames += len(frames)

    def close(self) -> None:
        self._proc.stdin.close()  # type: ignore[union-attr]
        if self._proc.wait() != 0:
            raise VideoError(f"ffmpeg could not write {self.path}: {_tail(self._log)}")
        self._log.close()

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._log.close()


class VideoReader:
    """Frames of mp4 files read forward through one ffmpeg process per file.

    ``read(path, start, n)`` returns frames ``start .. start + n`` (T, H, W, 3) of ``path``; reading forward in
    the same file reuses the running decoder (episodes of a LeRobot file lie in order), anything else restarts
    it. Every decoded frame is passed through once (no frame-rate conversion), so frame k is the k-th frame.
    """

    def __init__(self, width: int, height: int) -> None:
        self.shape = (height, width, 3)
        self._path: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._pos = 0
        self._log = None

    def _open(self, path: Path) -> None:
        self.close()
        if not path.is_file():
            raise VideoError(f"video file {path} is missing")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - ffmpeg's stderr for as long as it runs
        cmd = [ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log)
        self._path, self._pos = path, 0

    def _frames(self, n: int) -> np.ndarray:
        size = int(np.prod(self.shape))
        buf = self._proc.stdout.read(n * size)  # type: ignore[union-attr]
        if len(buf) != n * size:
            got = len(buf) // size
            raise VideoError(f"{self._path}: frame {self._pos + got} is past the end of the video "
                             f"(asked for {n} frames from {self._pos}; ffmpeg: {_tail(self._log)})")
        self._pos += n
        return np.frombuffer(buf, np.uint8).reshape(n, *self.shape)

    def read(self, path: Path, start: int, n: int) -> np.ndarray:
        path = Path(path)
        if self._proc is None or path != self._path or start < self._pos:
            self._open(path)
        while self._pos < start:  # skip forward in bounded steps
            self._frames(min(start - self._pos, 256))
        return self._frames(n).copy()

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdout.close()  # type: ignore[union-attr]
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def video_frame_count(path: Path) -> int:
    """How many video frames ``path`` holds, counted by ffmpeg from the packets (nothing decoded)."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-stats", "-i", str(path), "-map", "0:v:0",
                           "-c", "copy", "-f", "null", "-"], capture_output=True)
    counts = re.findall(rb"frame=\s*(\d+)", proc.stderr)
    if proc.returncode != 0 or not counts:
        raise VideoError(f"ffmpeg could not read {path}: {proc.stderr.decode(errors='replace')[-300:]}")
    return int(counts[-1])
