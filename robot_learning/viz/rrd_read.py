"""Read an ``.rrd`` file back with rerun's own reader (``rerun.chunk.RrdReader``): what a view really holds.

Used by the tests (the entities a view must have) and by ``manip-stack view --png``, which renders a frame from
what was read back (rerun's viewer cannot take a screenshot on a headless machine).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# rerun's ChannelDatatype and ColorModel codes (rerun.encodings)
_DTYPES = {6: np.uint8, 7: np.int8, 8: np.uint16, 9: np.int16, 10: np.uint32, 11: np.int32, 33: np.float16,
           34: np.float32, 35: np.float64}
_CHANNELS = {None: 1, 1: 1, 2: 3, 3: 4, 4: 3, 5: 4}


@dataclass
class RrdContents:
    """Every non-static row of every entity, by component, with its ``step``; static rows apart."""

    path: Path
    rows: dict[str, dict[str, list[tuple[int | None, object]]]] = field(default_factory=dict)
    static: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def entities(self) -> set[str]:
        return set(self.rows) | set(self.static)

    def components(self, entity: str) -> set[str]:
        return set(self.rows.get(entity, {})) | set(self.static.get(entity, {}))

    def values(self, entity: str, component: str) -> list[tuple[int | None, object]]:
        """(step, value) rows of one component, in step order (a value is what pyarrow's ``as_py`` gives)."""
        return sorted(self.rows.get(entity, {}).get(component, []), key=lambda r: -1 if r[0] is None else r[0])

    def at_step(self, entity: str, component: str, step: int) -> object | None:
        """The value in force at ``step``: the last row at or before it, else the static one."""
        found = None
        for s, value in self.values(entity, component):
            if s is not None and s <= step:
                found = value
        return found if found is not None else self.static.get(entity, {}).get(component)

    def steps(self) -> list[int]:
        return sorted({s for comps in self.rows.values() for rows in comps.values() for s, _ in rows if s is not None})


def read_rrd(path: str | Path) -> RrdContents:
    """All of an ``.rrd`` file's first recording, decoded to Python values (small views only: it is all loaded)."""
    from rerun.chunk import RrdReader

    contents = RrdContents(Path(path))
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for chunk in RrdReader(path).stream():
        batch = chunk.to_record_batch()
        names = [n for n in batch.schema.names if ":" in n]
        if chunk.is_static:
            target = contents.static.setdefault(chunk.entity_path, {})
            for name in names:
                for value in batch.column(name).to_pylist():
                    if value is not None:
                        target[name] = value
            continue
        steps = batch.column("step").to_pylist() if "step" in batch.schema.names else [None] * batch.num_rows
        for name in names:
            for step, value in zip(steps, batch.column(name).to_pylist(), strict=True):
                if value is not None:
                    rows[chunk.entity_path][name].append((step, value))
    contents.rows = {entity: dict(comps) for entity, comps in rows.items()}
    return contents


def decode_image(buffer: object, image_format: object) -> np.ndarray:
    """An ``Image:buffer``/``DepthImage:buffer`` value and its ``*:format`` as an (H, W[, C]) array."""
    buffer = buffer[0] if buffer and isinstance(buffer[0], (list, bytes)) else buffer
    image_format = image_format[0] if isinstance(image_format, list) else image_format
    dtype = np.dtype(_DTYPES[image_format["channel_datatype"]])
    channels = _CHANNELS[image_format.get("color_model")]
    shape = (image_format["height"], image_format["width"]) + ((channels,) if channels > 1 else ())
    return np.frombuffer(bytes(bytearray(buffer)), dtype=dtype).reshape(shape)


def image_at(contents: RrdContents, entity: str, step: int, archetype: str = "Image") -> np.ndarray | None:
    buffer = contents.at_step(entity, f"{archetype}:buffer", step)
    image_format = contents.at_step(entity, f"{archetype}:format", step)
    return None if buffer is None or image_format is None else decode_image(buffer, image_format)


def transform_at(contents: RrdContents, entity: str, step: int) -> np.ndarray | None:
    """The 4x4 ``Transform3D`` (translation + mat3x3, as the view logs them) in force at ``step``."""
    translation = contents.at_step(entity, "Transform3D:translation", step)
    mat = contents.at_step(entity, "Transform3D:mat3x3", step)
    if translation is None or mat is None:
        return None
    T = np.eye(4)
    T[:3, 3] = np.asarray(translation, dtype=float).reshape(-1)[:3]
    T[:3, :3] = np.asarray(mat, dtype=float).reshape(3, 3).T  # stored column-major
    return T
