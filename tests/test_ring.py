import numpy as np
import pytest

from network.ring import Ring


def test_keeps_the_newest_in_order() -> None:
    r = Ring(5)
    for i in range(3):
        r.append(i)
    assert r.values().tolist() == [0, 1, 2] and len(r) == 3
    for i in range(3, 12):
        r.append(i)
    assert r.values().tolist() == [7, 8, 9, 10, 11] and len(r) == 5
    assert np.array_equal(Ring(3).values(), np.empty(0))
    with pytest.raises(ValueError):
        Ring(0)
