"""Analytic toys with exact truth, for measuring how well learned models generalise.

Each ``make_*`` function draws a training sample and an independent test sample
(seeded by ``random_state``) and returns them in a :class:`sklearn.utils.Bunch`
together with callables that give the exact truth at any ``X``.  They are the
toys of ``bench/bench_accuracy.py`` (the accuracy benchmark that chose the
estimators' defaults); the formulas are in docs/math.md (sections on the BIT and
the BPT) and below.

BoostedParametricTree toys (nuisances nu, terms ``[(0,), (1,), (0, 0), (0, 1), (1, 1)]``
for two nuisances, ``[(0,), (0, 0)]`` for one):

* :func:`make_shift_independent` -- three Gaussian features; the sample at a base
  point nu is an *independent* draw from an exponential-family tilt of the nominal
  density whose log-ratio is exactly quadratic in nu,
  ``log dsigma(x|nu)/dsigma(x|0) = sum_A m_A(nu) Delta_A(x)`` with
  ``Delta_A(x) = alpha_A . x + x^T B_A x / 2 + beta_A`` (``B_A`` gives an
  interaction x0 x1 and curvature in x0 and x2).
* :func:`make_shift_reweighted` -- the same truth, but every base point reuses the
  nominal events with weights ``exp(g_nu(x) + sum_k nu_k eta_k(x) u_k
  - sum_k nu_k^2 eta_k(x)^2 / 2)``: a latent ``u_k ~ N(0, 1)`` per event (the same
  at every base point, as in generator weight variations) makes the weights noisy
  while ``E[weight | x]`` stays exactly ``exp(g_nu(x))``.
* :func:`make_energy_scale` -- one nuisance: the same events with a Gamma(k, 1)
  distributed feature scaled by ``s = 1 + delta nu``; the exact log-ratio
  ``-k log s + x0 (1 - 1/s)`` is not a polynomial in nu (a quadratic model
  approximates it).

BoostedInformationTree toys (weights exactly quadratic in theta, latent noise):

* :func:`make_bit_quadratic` -- two parameters; ``w(theta) = c0 (1 + theta . a)^2``
  with amplitudes ``a_1 = f_1(x) + s_1 cos(phi)``, ``a_2 = f_2(x) + s_2(x) sin(phi)``
  and a latent azimuth ``phi``, so that ``R_(a) = 2 f_a``,
  ``R_(a,a) = f_a^2 + s_a^2 / 2``, ``R_(0,1) = 2 f_1 f_2``.
* :func:`make_bit_many` -- ``n_parameters`` (default 15) parameters, linear and
  quadratic terms (135 for 15), ``a_a = f_a(x) + sigma u_a`` with independent latent
  ``u_a ~ N(0, 1)``: ``R_(a) = 2 f_a``, ``R_(a,a) = f_a^2 + sigma^2``,
  ``R_(a,b) = 2 f_a f_b``.

:class:`ExactModel` wraps a truth callable as a fitted model (``predict``, ``terms_``),
so that :class:`bpt.inference.Process` can use the exact R_A / Delta_A in place of
a learned estimator.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch

from ._terms import default_base_points, make_terms, monomials

__all__ = ["ExactModel", "make_shift_independent", "make_shift_reweighted",
           "make_energy_scale", "make_bit_quadratic", "make_bit_many"]


def _rngs(random_state, k):
    seq = (random_state if isinstance(random_state, np.random.SeedSequence)
           else np.random.SeedSequence(random_state))
    return [np.random.default_rng(s) for s in seq.spawn(k)]


def _check_n(n, name):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _check_X(X, n_features):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"X must have shape (N, {n_features}), got {X.shape}")
    return X


def _points(p, size, name):
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0 and size == 1:
        arr = arr.reshape(1)
    if arr.ndim not in (1, 2) or arr.shape[-1] != size or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite with shape ({size},) or (M, {size}), got "
                         f"shape {arr.shape}")
    return np.atleast_2d(arr), arr.ndim == 1


class ExactModel:
    """A fitted-model stand-in that returns exact coefficients.

    Parameters
    ----------
    function : callable
        ``function(X)`` -> (N, n_terms) float64, the exact R_A(x) (BIT) or
        Delta_A(x) (BPT) in ``terms`` order.
    terms : list of tuples
        The polynomial terms (as ``terms_`` of an estimator).

    Has ``terms_``, ``predict(X)`` and ``n_features_in_`` (if given), which is all
    :class:`bpt.inference.Process` needs of a ``ratio`` or ``systematics`` model.
    """

    def __init__(self, function, terms, n_features=None):
        if not callable(function):
            raise ValueError("function must be callable")
        self.function = function
        self.terms_ = [tuple(int(i) for i in t) for t in terms]
        if n_features is not None:
            self.n_features_in_ = int(n_features)

    def predict(self, X):
        """The exact coefficients at X, float64 (N, n_terms)."""
        out = np.asarray(self.function(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        return out.reshape(out.shape[0], len(self.terms_))


# =========================================================================== BPT
_SHIFT_TERMS = [(0,), (1,), (0, 0), (0, 1), (1, 1)]
# Delta_A(x) = alpha_A . x + x^T B_A x / 2 + beta_A
_ALPHA = np.array([[0.30, 0.00, 0.10],
                   [0.00, 0.25, 0.00],
                   [0.05, 0.00, 0.00],
                   [0.08, 0.06, 0.00],
                   [0.00, -0.04, 0.00]])
_BETA = np.array([0.05, -0.03, 0.02, 0.01, -0.02])
_B = np.zeros((5, 3, 3))
_B[0, 0, 1] = _B[0, 1, 0] = 0.10          # Delta_(0,) has 0.1 x0 x1
_B[1, 2, 2] = 0.10                        # Delta_(1,) has 0.05 x2^2
_B[2, 0, 0] = -0.06                       # Delta_(0,0) has -0.03 x0^2
_SHIFT_POINTS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0],
                          [1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
_SHIFT_TEST = np.array([[0.5, 0.5], [-0.5, 0.8], [0.7, -0.3], [-1.5, 0.5], [1.2, -1.2],
                        [0.3, 1.5]])


def _shift_delta(X):
    X = _check_X(X, 3)
    quad = 0.5 * np.einsum("ni,aij,nj->na", X, _B, X)
    return X @ _ALPHA.T + quad + _BETA


def _shift_log_ratio(X, nu):
    pts, single = _points(nu, 2, "nu")
    g = _shift_delta(X) @ monomials(pts, _SHIFT_TERMS).T
    return g[:, 0] if single else g


def _shift_tilt(nu):
    """(a, B, Sigma, mu, log yield ratio) of the tilted Gaussian at nu."""
    m = monomials(np.asarray(nu, dtype=np.float64), _SHIFT_TERMS)
    a = m @ _ALPHA
    B = np.einsum("a,aij->ij", m, _B)
    prec = np.eye(3) - B
    sign, logdet = np.linalg.slogdet(prec)
    if sign <= 0 or np.min(np.linalg.eigvalsh(prec)) <= 0:
        raise ValueError(f"nu = {list(nu)} is outside the toy's range (I - B(nu) must be "
                         "positive definite)")
    cov = np.linalg.inv(prec)
    mu = cov @ a
    # integral of N(x; 0, I) exp(a.x + x^T B x / 2) = det(prec)^-1/2 exp(a^T cov a / 2)
    log_yield = m @ _BETA - 0.5 * logdet + 0.5 * a @ mu
    return mu, cov, log_yield


def _shift_bunch(name, X, nu, w, groups, X_test, points, description):
    n_test = X_test.shape[0]
    return Bunch(name=name, kind="bpt", X=X, nu=nu, weight=w, groups=groups,
                 X_test=X_test, weight_test=np.full(n_test, 1.0 / n_test),
                 terms=list(_SHIFT_TERMS), n_nuisances=2, base_points=points.copy(),
                 test_points=_SHIFT_TEST.copy(), log_ratio=_shift_log_ratio,
                 delta=_shift_delta, description=description)


def make_shift_independent(n_per_point=50_000, n_test=50_000, random_state=None):
    """Independent samples at 8 base points + nominal (9 x ``n_per_point`` events).

    Two nuisances, three features.  Nominal: x ~ N(0, I), total yield 1.  At nu:
    x ~ N(mu(nu), Sigma(nu)) with Sigma = (I - B(nu))^-1, mu = Sigma a(nu),
    a(nu) = sum_A m_A(nu) alpha_A, B(nu) = sum_A m_A(nu) B_A, and total yield
    det(Sigma)^1/2 exp(a^T Sigma a / 2 + m(nu) . beta), so that the log-ratio of the
    weighted densities is exactly ``sum_A m_A(nu) Delta_A(x)``.

    Returns
    -------
    Bunch with ``X`` (9 n, 3), ``nu`` (9 n, 2), ``weight`` (yield / n per event),
    ``groups`` None (the samples are independent), ``X_test`` / ``weight_test``
    (an independent nominal sample), ``terms``, ``n_nuisances``, ``base_points``
    (8, 2), ``test_points`` (off-grid nu), ``log_ratio(X, nu)`` and ``delta(X)``
    (exact), ``name``, ``kind`` = "bpt", ``description``.
    """
    n = _check_n(n_per_point, "n_per_point")
    n_test = _check_n(n_test, "n_test")
    rngs = _rngs(random_state, len(_SHIFT_POINTS) + 2)
    Xs, nus, ws = [rngs[0].standard_normal((n, 3))], [np.zeros((n, 2))], [np.full(n, 1.0 / n)]
    for k, p in enumerate(_SHIFT_POINTS):
        mu, cov, log_yield = _shift_tilt(p)
        z = rngs[k + 1].standard_normal((n, 3))
        Xs.append(mu + z @ np.linalg.cholesky(cov).T)
        nus.append(np.tile(p, (n, 1)))
        ws.append(np.full(n, np.exp(log_yield) / n))
    X_test = rngs[-1].standard_normal((n_test, 3))
    return _shift_bunch("shift_independent", np.vstack(Xs), np.vstack(nus), np.concatenate(ws),
                        None, X_test, _SHIFT_POINTS,
                        "BPT, 2 nuisances, independent samples at 9 points, exact quadratic")


def _latent_eta(X, latent_noise):
    return latent_noise * (0.75 + 0.25 * np.tanh(X[:, :2]))


def make_shift_reweighted(n_per_point=50_000, n_test=50_000, latent_noise=0.3,
                          random_state=None):
    """The truth of :func:`make_shift_independent` on shared, reweighted events.

    ``n_per_point`` nominal events x ~ N(0, I) (weight 1 / n) appear again at each of
    the 8 base points with weight ``exp(g_nu(x) + sum_k nu_k eta_k(x) u_k
    - sum_k nu_k^2 eta_k(x)^2 / 2) / n``, where ``u_k ~ N(0, 1)`` is a latent per
    event (the same at every base point) and ``eta_k(x) = latent_noise (0.75 + 0.25
    tanh(x_k))``; ``E[weight | x]`` is exactly ``exp(g_nu(x)) / n``.

    Returns the Bunch of :func:`make_shift_independent`, with ``groups`` = the
    event index (rows of one event share it; pass it to ``fit(..., groups=)``).
    """
    n = _check_n(n_per_point, "n_per_point")
    n_test = _check_n(n_test, "n_test")
    if not (np.isfinite(latent_noise) and latent_noise >= 0):
        raise ValueError(f"latent_noise must be >= 0, got {latent_noise!r}")
    rng, rng_test = _rngs(random_state, 2)
    X0 = rng.standard_normal((n, 3))
    u = rng.standard_normal((n, 2))
    eta = _latent_eta(X0, latent_noise)
    pts = np.vstack([np.zeros((1, 2)), _SHIFT_POINTS])
    g = _shift_log_ratio(X0, pts)                                   # (n, 9)
    logw = g + (u * eta) @ pts.T - 0.5 * (eta ** 2) @ (pts ** 2).T
    X = np.tile(X0, (len(pts), 1))
    nu = np.repeat(pts, n, axis=0)
    w = np.exp(logw.T.reshape(-1)) / n
    groups = np.tile(np.arange(n), len(pts))
    X_test = rng_test.standard_normal((n_test, 3))
    return _shift_bunch("shift_reweighted", X, nu, w, groups, X_test, _SHIFT_POINTS,
                        "BPT, 2 nuisances, shared events reweighted (latent noise), exact "
                        "quadratic")


def make_energy_scale(n_per_point=50_000, n_test=50_000, shape=2.0, delta=0.05,
                      random_state=None):
    """A scale-type systematic: the same events with x0 scaled by s = 1 + delta nu.

    Three features: x0 ~ Gamma(``shape``, 1) (the scaled "energy"), x1 ~ N(0, 1) and
    x2 ~ U(0, 1) (not affected).  Base points nu in {-2, -1, 1, 2} plus the nominal,
    each the same ``n_per_point`` events (weights 1 / n).  The exact log-ratio is

        log dsigma(x|nu)/dsigma(x|0) = -shape log s + x0 (1 - 1/s),

    not a polynomial in nu: a quadratic BPT (terms ``[(0,), (0, 0)]``) approximates
    it.  ``delta(X)`` is None; ``log_ratio(X, nu)`` is exact.  ``groups`` = event index.
    """
    n = _check_n(n_per_point, "n_per_point")
    n_test = _check_n(n_test, "n_test")
    if not (np.isfinite(shape) and shape > 0):
        raise ValueError(f"shape must be > 0, got {shape!r}")
    if not (np.isfinite(delta) and 0 < delta < 0.25):
        raise ValueError(f"delta must be in (0, 0.25), got {delta!r}")
    points = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    rng, rng_test = _rngs(random_state, 2)

    def draw(r, m):
        return np.column_stack([r.gamma(shape, 1.0, m), r.standard_normal(m), r.random(m)])

    X0 = draw(rng, n)
    pts = np.vstack([np.zeros((1, 1)), points])
    Xs = []
    for p in pts[:, 0]:
        Xp = X0.copy()
        Xp[:, 0] *= 1.0 + delta * p
        Xs.append(Xp)

    def log_ratio(X, nu):
        X = _check_X(X, 3)
        p, single = _points(nu, 1, "nu")
        s = 1.0 + delta * p[:, 0]
        if np.any(s <= 0):
            raise ValueError("nu gives a non-positive scale 1 + delta nu")
        g = -shape * np.log(s)[None, :] + X[:, :1] * (1.0 - 1.0 / s)[None, :]
        return g[:, 0] if single else g

    return Bunch(name="energy_scale", kind="bpt", X=np.vstack(Xs),
                 nu=np.repeat(pts, n, axis=0), weight=np.full(n * len(pts), 1.0 / n),
                 groups=np.tile(np.arange(n), len(pts)), X_test=draw(rng_test, n_test),
                 weight_test=np.full(n_test, 1.0 / n_test), terms=[(0,), (0, 0)],
                 n_nuisances=1, base_points=points, test_points=np.array([[-1.5], [-0.5],
                                                                          [0.5], [1.5]]),
                 log_ratio=log_ratio, delta=None,
                 description="BPT, 1 nuisance, energy scale on a Gamma feature, shared "
                             "events (log-ratio not polynomial)")


# =========================================================================== BIT
_BIT2_TERMS = [(0,), (1,), (0, 0), (0, 1), (1, 1)]
_BIT2_TEST = np.array([[0.7, -1.3], [-0.5, 0.4], [1.5, 0.8], [-1.2, -0.6], [0.3, 1.7]])


def _bit2_amplitudes(X):
    X = _check_X(X, 3)
    f1 = 0.3 * np.tanh(X[:, 0]) + 0.05
    s1 = np.full(X.shape[0], 0.25)
    f2 = 0.2 * X[:, 1] * (1.0 + 0.5 * np.tanh(X[:, 0]))
    s2 = 0.15 * (1.0 + 0.5 * np.tanh(X[:, 2]))
    return f1, s1, f2, s2


def _bit2_coefficients(X):
    f1, s1, f2, s2 = _bit2_amplitudes(X)
    return np.column_stack([2 * f1, 2 * f2, f1 * f1 + 0.5 * s1 * s1, 2 * f1 * f2,
                            f2 * f2 + 0.5 * s2 * s2])


def _ratio_fn(coef_fn, terms, n_par):
    def ratio(X, theta):
        th, single = _points(theta, n_par, "theta")
        r = 1.0 + coef_fn(X) @ monomials(th, terms).T
        return r[:, 0] if single else r
    return ratio


def _bit2_sample(n, rng, yield_):
    X = rng.standard_normal((n, 3))
    c0 = yield_ / n * rng.uniform(0.5, 1.5, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    f1, s1, f2, s2 = _bit2_amplitudes(X)
    a1 = f1 + s1 * np.cos(phi)
    a2 = f2 + s2 * np.sin(phi)
    y = c0[:, None] * np.column_stack([np.ones(n), 2 * a1, 2 * a2, a1 * a1, 2 * a1 * a2,
                                       a2 * a2])
    return X, y


def make_bit_quadratic(n=150_000, n_test=50_000, random_state=None):
    """Two parameters, quadratic, three Gaussian features, latent noise.

    SM: x ~ N(0, I), c0 = U(0.5, 1.5) / n (total yield about 1).  Event weight
    ``w(theta) = c0 (1 + theta . a)^2`` with ``a_1 = f_1 + s_1 cos(phi)``,
    ``a_2 = f_2 + s_2 sin(phi)``, phi ~ U(0, 2 pi) latent, and

        f_1 = 0.3 tanh(x0) + 0.05,          s_1 = 0.25,
        f_2 = 0.2 x1 (1 + 0.5 tanh(x0)),    s_2 = 0.15 (1 + 0.5 tanh(x2)).

    Exact: R_(0,) = 2 f_1, R_(1,) = 2 f_2, R_(0,0) = f_1^2 + s_1^2/2,
    R_(0,1) = 2 f_1 f_2, R_(1,1) = f_2^2 + s_2^2/2; r(x|theta) >= 0 everywhere.

    Returns
    -------
    Bunch with ``X`` (n, 3), ``y`` (n, 6) (the BIT layout c0, c_A), ``X_test``,
    ``y_test`` (an independent sample), ``terms``, ``n_parameters`` = 2,
    ``test_points`` (off-grid theta), ``coefficients(X)`` (exact R_A),
    ``ratio(X, theta)`` (exact r), ``name``, ``kind`` = "bit", ``description``.
    """
    n = _check_n(n, "n")
    n_test = _check_n(n_test, "n_test")
    rng, rng_test = _rngs(random_state, 2)
    X, y = _bit2_sample(n, rng, 1.0)
    X_test, y_test = _bit2_sample(n_test, rng_test, 1.0)
    return Bunch(name="bit_quadratic", kind="bit", X=X, y=y, X_test=X_test, y_test=y_test,
                 terms=list(_BIT2_TERMS), n_parameters=2, test_points=_BIT2_TEST.copy(),
                 coefficients=_bit2_coefficients,
                 ratio=_ratio_fn(_bit2_coefficients, _BIT2_TERMS, 2),
                 description="BIT, 2 parameters quadratic (5 terms), latent noise")


def _many_weights(n_parameters, n_features):
    a = np.arange(n_parameters)[:, None]
    j = np.arange(n_features)[None, :]
    return 0.8 * np.cos(1.3 * a + 2.1 * j + 0.4 * a * j)


def make_bit_many(n=100_000, n_test=30_000, n_parameters=15, n_features=6, sigma=0.15,
                  random_state=None):
    """``n_parameters`` parameters, all linear and quadratic terms, latent noise.

    SM: x ~ N(0, I_F), c0 = 1 / n.  Event weight ``w(theta) = c0 (1 + theta . a)^2``
    with ``a_a = f_a(x) + sigma u_a``, ``u_a ~ N(0, 1)`` latent and independent, and
    ``f_a(x) = 0.2 tanh(sum_j W_aj x_j / sqrt(F))``, ``W_aj = 0.8 cos(1.3 a + 2.1 j
    + 0.4 a j)``.  Per event ``c_(a) = 2 a_a``, ``c_(a,a) = a_a^2``,
    ``c_(a,b) = 2 a_a a_b``; exact ``R_(a) = 2 f_a``, ``R_(a,a) = f_a^2 + sigma^2``,
    ``R_(a,b) = 2 f_a f_b``.

    Returns the Bunch of :func:`make_bit_quadratic` (terms ``make_terms(P, 2)``,
    ``test_points`` five random off-grid theta with entries in [-0.5, 0.5]).
    """
    n = _check_n(n, "n")
    n_test = _check_n(n_test, "n_test")
    P = _check_n(n_parameters, "n_parameters")
    F = _check_n(n_features, "n_features")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    terms = make_terms(P, 2)
    W = _many_weights(P, F)
    ia = np.array([t[0] for t in terms])
    ib = np.array([t[1] if len(t) == 2 else -1 for t in terms])
    quad = ib >= 0
    cross = quad & (ia != ib)

    def f(X):
        return 0.2 * np.tanh(_check_X(X, F) @ W.T / np.sqrt(F))

    def poly(a, extra_diag):
        out = np.empty((a.shape[0], len(terms)))
        out[:, ~quad] = 2.0 * a[:, ia[~quad]]
        out[:, quad] = a[:, ia[quad]] * a[:, ib[quad]]
        out[:, cross] *= 2.0
        out[:, quad & ~cross] += extra_diag
        return out

    def coefficients(X):
        return poly(f(X), sigma ** 2)

    def sample(m, rng):
        X = rng.standard_normal((m, F))
        a = f(X) + sigma * rng.standard_normal((m, P))
        c0 = 1.0 / m
        return X, np.column_stack([np.full(m, c0), c0 * poly(a, 0.0)])

    rng, rng_test, rng_pts = _rngs(random_state, 3)
    X, y = sample(n, rng)
    X_test, y_test = sample(n_test, rng_test)
    points = np.round(rng_pts.uniform(-0.5, 0.5, (5, P)), 3)
    return Bunch(name=f"bit_many_{P}", kind="bit", X=X, y=y, X_test=X_test, y_test=y_test,
                 terms=terms, n_parameters=P, test_points=points, coefficients=coefficients,
                 ratio=_ratio_fn(coefficients, terms, P),
                 base_points=default_base_points(P, terms),
                 description=f"BIT, {P} parameters linear + quadratic ({len(terms)} terms), "
                             "latent noise")
