"""The published measurements the performance model must reproduce within ±25%.

The points, each with its source, are the rows of ``data/calibration_points.csv``, in the format
of ``python -m hardware.validate`` (see ``hardware/validate.py``): MLPerf Inference v4.1
(8x H100, Llama-2-70B, offline throughput and server TPOT/TTFT, run as NVIDIA ran it: four TP2
replicas), Groq's 576-chip Llama-2-70B per-user speed, and Llama 3 405B training on 16,384 H100.
``tests/test_calibration.py`` asserts the tolerance. Points the model was *not* set against are
in ``data/validation_points.csv``.
"""

from __future__ import annotations

from hardware.validate import PROJECT_FILES, TOLERANCE, Result, evaluate, read_measurements

__all__ = ["TOLERANCE", "UNITS", "calibration_points"]

UNITS = {"output_tokens_per_s_system": "output tokens/s", "tokens_per_s_per_user": "tokens/s per user",
         "tpot_s": "s", "ttft_s": "s", "training_tokens_per_s_per_chip": "training tokens/s per chip"}


def calibration_points() -> list[Result]:
    """Modelled values beside the published ones (``Result.error`` is modelled / published - 1)."""
    return evaluate(read_measurements(PROJECT_FILES["calibration"]))
