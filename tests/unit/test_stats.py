import random

import numpy as np
import pytest

from chaosregistry.stats import percentile, summarize


def test_percentiles_agree_with_numpy_linear_interpolation() -> None:
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101, 1000):
        values = sorted(rng.expovariate(5) for _ in range(n))
        for q in (0, 1, 50, 95, 99, 99.9, 100):
            assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_summary_of_nothing_is_all_none() -> None:
    assert set(summarize([]).values()) == {None}
