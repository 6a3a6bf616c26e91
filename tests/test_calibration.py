"""The published measurements the model is calibrated against, within ±25%."""

import pytest

from hardware.calibration import TOLERANCE, UNITS, calibration_points


@pytest.mark.parametrize("point", calibration_points(), ids=lambda p: p.id)
def test_calibration_point_within_tolerance(point):
    assert abs(point.error) <= TOLERANCE, (
        f"{point.id}: modelled {point.modelled:.4g} {UNITS[point.metric]} vs published {point.published:.4g}")
