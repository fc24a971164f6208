"""How tests/data/bit_v1.bpt and bit_v1_expected.npz were made (format version 1).

Do NOT re-run this to "fix" a failing test: the committed files are the frozen
record of what format version 1 looks like, and tests/test_io.py checks that
every later bpt still loads them and predicts the stored values bit for bit.
A new format version gets its own fixture (make_fixture_v2.py, bit_v2.bpt).

    python tests/data/make_fixture_v1.py
"""

import os

import numpy as np

import bpt

HERE = os.path.dirname(os.path.abspath(__file__))


class _Frame:
    """Just enough of a DataFrame (``columns`` + ``__array__``) to record feature names."""

    def __init__(self, values, columns):
        self._values, self.columns = values, columns

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._values, dtype=dtype)


def main():
    rng = np.random.default_rng(20240501)
    n = 400
    X = rng.uniform(-1.0, 1.0, (n, 2))
    w = rng.uniform(0.5, 1.5, n)
    y = np.column_stack([w, w * (X[:, 0] + 0.2 * rng.normal(size=n)), w * X[:, 1] ** 2])
    est = bpt.BoostedInformationTree(n_parameters=1, order=2, n_estimators=4, max_depth=2,
                                     min_samples_leaf=30, split="exact", learning_rate=0.3,
                                     random_state=7)
    est.fit(_Frame(X, ["pt", "eta"]), y)
    est.fit_time_ = 0.0                      # keep the fixture reproducible byte for byte
    est.save(os.path.join(HERE, "bit_v1.bpt"))
    X_test = np.random.default_rng(1).uniform(-1.2, 1.2, (50, 2))
    np.savez(os.path.join(HERE, "bit_v1_expected.npz"), X=X_test, predict=est.predict(X_test))


if __name__ == "__main__":
    main()
