"""Plain-text tables of a calibration: per camera and method, the residuals that justify (or refuse) it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from calibration.multicam import pose_difference
from calibration.session import CalibrationReport


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def format_report(report: CalibrationReport, all_methods: bool = False,
                  believed: Mapping[str, np.ndarray] | None = None,
                  truth: Mapping[str, np.ndarray] | None = None) -> str:
    """The result table; ``believed`` adds how far each camera moved from the file, ``truth`` (sim) the error."""
    header = ["camera", "setup", "method", "views", "reproj px rms/max", "rot deg rms/max", "trans mm rms/max",
              "1-sigma deg/mm"]
    if believed is not None:
        header.append("change deg/mm")
    if truth is not None:
        header.append("vs truth deg/mm")
    header.append("status")
    rows = []
    for name, result in report.cameras.items():
        solutions = result.solutions if all_methods else result.solutions[:1]
        if not solutions:
            rows.append([name, result.setup.value, "-", str(result.n_views), "-", "-", "-", "-"]
                        + ["-"] * (believed is not None) + ["-"] * (truth is not None) + ["FAIL"])
        for index, solution in enumerate(solutions):
            r = solution.residuals
            row = [name if index == 0 else "", result.setup.value if index == 0 else "", solution.method.value,
                   str(r.n_views), f"{r.reprojection_rms_px:.3f} / {r.reprojection_max_px:.3f}",
                   f"{r.rotation_rms_deg:.3f} / {r.rotation_max_deg:.3f}",
                   f"{r.translation_rms_mm:.2f} / {r.translation_max_mm:.2f}",
                   "-" if solution.uncertainty is None else
                   f"{solution.uncertainty.rotation_deg:.3f} / {solution.uncertainty.translation_mm:.2f}"]
            for reference in (believed, truth):
                if reference is not None:
                    deg, mm = pose_difference(solution.T_solution, reference[name])
                    row.append(f"{deg:.3f} / {mm:.2f}")
            row.append(("ok" if result.passed else "FAIL") if index == 0 else "")
            rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(row, widths) for row in rows]
    for name, result in report.cameras.items():
        if result.dropped_views:
            lines.append(f"{name}: {result.dropped_views} view(s) left out (PnP pose flipped)")
        for problem in result.problems:
            lines.append(f"{name}: {problem}")
    for pair in report.pairs:
        lines.append(f"pair {pair.camera_a}/{pair.camera_b}: board-only relative pose vs hand-eye differ by "
                     f"{pair.rotation_deg:.3f} deg, {pair.translation_mm:.2f} mm ({pair.n_views} shared views)")
    lines += [f"pair problem: {p}" for p in report.pair_problems]
    lines.append("thresholds: " + ("passed" if report.passed else "FAILED"))
    return "\n".join(lines)
