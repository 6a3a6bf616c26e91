"""The published measurements the model is calibrated against, within ±25%."""

import pytest

from hardware.calibration import TOLERANCE, calibration_points


@pytest.mark.parametrize("point", calibration_points(), ids=lambda p: p.name)
def test_calibration_point_within_tolerance(point):
    assert abs(point.relative_error) <= TOLERANCE, (
        f"{point.name}: modelled {point.modelled:.4g} {point.unit} vs published {point.published:.4g}")
