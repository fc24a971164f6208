"""Shared analytic models whose true R_A(x) and Delta_A(x) are known exactly."""

import os

# The thread-invariance tests compare 1 thread with 2 real threads: let numba start 2
# threads even on a one-core runner (numba reads NUMBA_NUM_THREADS once, when imported).
os.environ.setdefault("NUMBA_NUM_THREADS", str(max(2, os.cpu_count() or 1)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# the original BIT code's power-law sample (see tests/data/bit_power_law/README.md)
REFERENCE = os.path.join(os.path.dirname(__file__), "data", "bit_power_law")


def bit_quadratic_model(n, seed, noise=True):
    """Two parameters, quadratic order, three features (x2 is pure noise).

    Per event c0 = w (w ~ U(0.5, 1.5)) and, with a latent z ~ N(0, 1) that
    averages out, c_A = w * (f_A(x) + noise_A(z)) such that
    R_A(x) = E[c_A|x] / E[c0|x] = f_A(x) exactly:
      R_0 = x0 - 0.5, R_1 = 0.5 x1, R_00 = x0^2, R_01 = x0 x1, R_11 = 0.3.
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, 3))
    w = rng.uniform(0.5, 1.5, n)
    z = rng.normal(size=n) if noise else np.zeros(n)
    truth = true_bit_coefficients(X)
    lat = np.stack([0.5 * z, 0.3 * z, 0.2 * (z ** 2 - 1), 0.1 * z, 0.05 * z], axis=1)
    y = np.column_stack([w, w[:, None] * (truth + lat)])
    return X, y, truth


def true_bit_coefficients(X):
    x0, x1 = X[:, 0], X[:, 1]
    return np.stack([x0 - 0.5, 0.5 * x1, x0 ** 2, x0 * x1, np.full_like(x0, 0.3)], axis=1)


# --- BPT: exponential-family shifts of Gaussian features -----------------------------
# g_nu(x) = sum_A m_A(nu) (alpha_A . x + beta_A) exactly, for nu = (nu0, nu1) and terms
# (nu0,), (nu1,), (nu0^2,), (nu0 nu1,), (nu1^2,).  A sample at nu has x ~ N(s(nu), I)
# with s(nu) = sum_A m_A(nu) alpha_A and total yield exp(|s|^2 / 2 + sum_A m_A beta_A).
BPT_ALPHA = np.array([[0.30, 0.00, 0.0],
                      [0.00, 0.25, 0.0],
                      [0.05, 0.00, 0.0],
                      [0.08, 0.06, 0.0],
                      [0.00, -0.04, 0.0]])
BPT_BETA = np.array([0.05, -0.03, 0.02, 0.01, -0.02])
BPT_TERMS = [(0,), (1,), (0, 0), (0, 1), (1, 1)]
BPT_POINTS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 1.0],
                       [-1.0, -1.0]])


def bpt_monomials(nu):
    nu = np.atleast_2d(nu)
    return np.stack([nu[:, 0], nu[:, 1], nu[:, 0] ** 2, nu[:, 0] * nu[:, 1], nu[:, 1] ** 2],
                    axis=1)


def bpt_leaf_metric(est, nu, w):
    """The metric W of a fitted BPT's least-squares leaf, derived here from
    docs/math.md section 2 (not from the package): the identity for shared events; for
    independent samples the inverse of C = diag(1 / n_k) + 1 1^T / n_0 (n_k the Kish
    effective sizes (sum w)^2 / sum w^2, nominal n_0), scaled to a mean diagonal of 1."""
    V = est.V_
    if est.samples_ == "shared":
        return np.eye(V.shape[0])
    nu = np.asarray(nu, dtype=float).reshape(len(w), -1)
    rows = [np.all(nu == 0, axis=1)] + [np.all(nu == p, axis=1) for p in est.base_points_]
    n = np.array([w[r].sum() ** 2 / (w[r] ** 2).sum() for r in rows])
    C = np.diag(1.0 / n[1:]) + 1.0 / n[0]
    W = np.linalg.inv(C)
    return W / np.mean(np.diag(W))


def bpt_leaf_map(est, nu, w):
    """H with Delta = H log(lambda_k / lambda_0) for a fitted BPT (see bpt_leaf_metric)."""
    V = est.V_
    W = bpt_leaf_metric(est, nu, w)
    return np.linalg.solve(V.T @ W @ V, V.T @ W)


def true_bpt_delta(X):
    return X @ BPT_ALPHA.T + BPT_BETA


def bpt_gaussian_samples(n_per_point, seed, points=BPT_POINTS, reweighted=False):
    """Nominal x ~ N(0, I) and samples at the base points.

    ``reweighted=False``: independent samples x ~ N(s(nu), I) with total yield
    exp(|s|^2/2 + m.beta).  ``reweighted=True``: every base point reuses the
    nominal events with weights exp(g_nu(x)) (as generator weight variations do).
    """
    rng = np.random.default_rng(seed)
    Xs, nus, ws = [], [], []
    X_nom = rng.normal(size=(n_per_point, 3))
    for p in np.vstack([np.zeros(2), points]):
        m = bpt_monomials(p)[0]
        s = m @ BPT_ALPHA
        if reweighted:
            Xs.append(X_nom)
            ws.append(np.exp(true_bpt_delta(X_nom) @ m) / n_per_point)
        else:
            yield_ = np.exp(0.5 * s @ s + m @ BPT_BETA)
            Xs.append(X_nom if not p.any() else rng.normal(size=(n_per_point, 3)) + s)
            ws.append(np.full(n_per_point, yield_ / n_per_point))
        nus.append(np.tile(p, (n_per_point, 1)))
    return np.vstack(Xs), np.vstack(nus), np.concatenate(ws)


def resave_container(source, mutate):
    """Read a saved file's bytes, let ``mutate(meta, arrays)`` edit its content, and
    write it again with a valid checksum: a crafted file that only the structural checks
    can refuse."""
    import io

    from bpt._io import read_container, write_container
    meta, arrays = read_container(io.BytesIO(source))
    kind = meta.pop("kind")
    del meta["format_version"], meta["bpt_version"]
    arrays = {k: v.copy() for k, v in arrays.items()}
    mutate(meta, arrays)
    buf = io.BytesIO()
    write_container(buf, kind, meta, arrays)
    return buf.getvalue()


def assert_two_real_threads():
    """n_jobs=2 runs the kernels on 2 numba threads (not 1 thread twice)."""
    import numba

    from bpt._base import numba_threads
    with numba_threads(2):
        assert numba.get_num_threads() == 2, numba.config.NUMBA_NUM_THREADS


@pytest.fixture(scope="module")
def one_numba_thread():
    """Run the kernels of a module's small fits on one thread (launching a parallel
    kernel costs milliseconds on a loaded machine); tests that pass n_jobs still get it,
    and thread-count invariance is tested on its own."""
    import numba
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


@pytest.fixture(scope="session")
def reference_data():
    def load(kind):
        return np.loadtxt(os.path.join(REFERENCE, f"{kind}_power_law_model.txt.gz"))

    return {k: load(k) for k in ("training_features", "training_weights",
                                 "training_diff_weights")}
