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


def test_newest_returns_the_last_n_in_order_across_the_wrap() -> None:
    r = Ring(5)
    assert r.newest(3).size == 0
    for i in range(3):
        r.append(i)
    assert r.newest(2).tolist() == [1.0, 2.0]
    assert r.newest(10).tolist() == [0.0, 1.0, 2.0]
    for i in range(3, 8):
        r.append(i)
    assert r.newest(4).tolist() == [4.0, 5.0, 6.0, 7.0]
    assert r.newest(5).tolist() == r.values().tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert r.newest(0).size == 0
