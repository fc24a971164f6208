"""Export a binned channel as a HistFactory JSON workspace (a pyhf workspace spec).

Only normalisation-type dependence can be expressed exactly (docs/inference.md, *pyhf
export*):

* a Gaussian-constrained nuisance nu scaling a process by (1 + kappa)^nu (a
  ``Process.normalization`` entry or the luminosity) is a ``normsys`` modifier with
  hi = 1 + kappa, lo = 1 / (1 + kappa): pyhf's exponential interpolation (``code1``)
  gives hi^nu for nu >= 0 and lo^-nu for nu < 0, i.e. (1 + kappa)^nu exactly, with the
  same unit Gaussian constraint;
* a free-floating nuisance (constraint None) with the same kappa on every process it
  scales is a ``normfactor`` mu = (1 + kappa)^nu (nu = log(mu) / log(1 + kappa));
* a POI whose every affected process scales as 1 + c theta (one c, the same in every
  bin: a BIT ratio with a constant linear coefficient) is a ``normfactor`` mu = 1 + c theta.

A BIT ratio with an x-dependent or quadratic coefficient, or a BPT shape systematic, is
refused with a ValueError naming the process.  The channel is duck-typed: ``name``,
``process_names``, ``edges`` (B+1,), ``pois``, ``nuisance_names``,
``expected_by_process(theta, nu)`` -> (n_proc, B), ``normalization_modifiers()`` -> list of
(process, nuisance, kappa) including the luminosity, and optionally ``nuisances``
(objects with ``name`` and ``constraint``; without it every nuisance is
Gaussian-constrained).  Whether the dependence is normalisation-type is decided
numerically (the yields at nu_k = 1, -1, 1/2 and theta_a = 1, -1/2, 2 against the
normalisation factors, to 1e-9), so a ``has_shape_dependence()`` flag is not needed: a
process is refused only where its yields actually differ, and named.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_finite

__all__ = ["to_pyhf_workspace", "PYHF_MODIFIER_SETTINGS"]

# Load the workspace with these settings to reproduce bpt's (1 + kappa)^nu exactly
# (pyhf's default for normsys, code4, is a polynomial inside |nu| < 1):
#   pyhf.Workspace(spec).model(modifier_settings=PYHF_MODIFIER_SETTINGS)
PYHF_MODIFIER_SETTINGS = {"normsys": {"interpcode": "code1"},
                          "histosys": {"interpcode": "code0"}}

_RTOL = 1e-9          # the probes must reproduce the normalisation factors to this
NORMFACTOR_BOUNDS = (0.0, 100.0)


def _close(a, b):
    return np.allclose(a, b, rtol=_RTOL, atol=_RTOL * max(1.0, float(np.max(np.abs(b)))))


def _constraints(channel, nu_names):
    """{nuisance name: constraint} (default "gaussian")."""
    out = {n: "gaussian" for n in nu_names}
    for n in getattr(channel, "nuisances", None) or ():
        if hasattr(n, "name") and hasattr(n, "constraint"):
            out[n.name] = n.constraint
    return out


def to_pyhf_workspace(channel, data_counts, poi=None, measurement="measurement"):
    """A pyhf workspace spec (dict, JSON-serialisable) of a binned channel and its data.

    Parameters
    ----------
    channel : a binned channel (see the module docstring for the interface)
    data_counts : (B,) observed counts per bin
    poi : str, optional
        The measurement's POI: a POI of the channel exported as a normfactor or a
        free-floating nuisance.  Default: the first exported POI, else the first
        free-floating nuisance, else the first nuisance.
    measurement : str, the measurement's name

    Returns ``{"channels", "observations", "measurements", "version"}``: one sample per
    process (``data`` = nominal yields per bin at theta = 0, nu = 0) with ``normsys`` /
    ``normfactor`` modifiers named by the nuisances and POIs.  Load it with
    ``pyhf.Workspace(spec).model(modifier_settings=PYHF_MODIFIER_SETTINGS)`` to get
    bpt's (1 + kappa)^nu exactly.

    Raises ValueError naming the process (and parameter) when a process depends on a POI
    or nuisance other than through a normalisation (a BIT ratio or a BPT shape
    systematic), for bad counts and for an unknown ``poi``.
    """
    name = str(channel.name)
    procs = list(channel.process_names)
    pois = list(channel.pois)
    nu_names = list(channel.nuisance_names)
    edges = check_finite(channel.edges, "channel.edges", ndim=1)
    B = edges.shape[0] - 1
    if B < 1 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"channel {name!r}: edges must be increasing with at least 2 entries")
    obs = check_finite(data_counts, "data_counts", ndim=1)
    if obs.shape[0] != B:
        raise ValueError(f"data_counts has {obs.shape[0]} bins but channel {name!r} has {B}")
    if np.any(obs < 0):
        raise ValueError(f"data_counts must be >= 0, bin {int(np.argmax(obs < 0))} is "
                         f"{obs[obs < 0][0]:.6g}")
    P, K = len(pois), len(nu_names)

    def expected(theta, nu):
        y = check_finite(channel.expected_by_process(np.asarray(theta, dtype=np.float64),
                                                     np.asarray(nu, dtype=np.float64)),
                         f"channel {name!r}: expected_by_process", ndim=2)
        if y.shape != (len(procs), B):
            raise ValueError(f"channel {name!r}: expected_by_process must return shape "
                             f"({len(procs)}, {B}), got {y.shape}")
        return y

    th0, nu0 = np.zeros(P), np.zeros(K)
    y0 = expected(th0, nu0)
    for ip, p in enumerate(procs):
        if np.any(y0[ip] < 0):
            raise ValueError(f"channel {name!r}: process {p!r} has a negative nominal yield in "
                             f"bin {int(np.argmax(y0[ip] < 0))}; pyhf needs yields >= 0")

    # ---- normalisation modifiers: log(1 + kappa) per (process, nuisance), merged
    log_k = np.zeros((len(procs), K))
    for p, n, kappa in channel.normalization_modifiers():
        if p not in procs or n not in nu_names:
            raise ValueError(f"channel {name!r}: normalisation modifier ({p!r}, {n!r}) names an "
                             "unknown process or nuisance")
        if not (np.isfinite(kappa) and kappa > -1):
            raise ValueError(f"channel {name!r}: kappa of ({p!r}, {n!r}) must be > -1, "
                             f"got {kappa!r}")
        log_k[procs.index(p), nu_names.index(n)] += np.log1p(float(kappa))

    # ---- probes: every nuisance acts only through its normalisation factors
    for k, n in enumerate(nu_names):
        for v in (1.0, -1.0, 0.5):
            nu = nu0.copy()
            nu[k] = v
            y = expected(th0, nu)
            for ip, p in enumerate(procs):
                if not _close(y[ip], y0[ip] * np.exp(v * log_k[ip, k])):
                    raise ValueError(
                        f"channel {name!r}: process {p!r} depends on nuisance {n!r} other than "
                        "through a normalisation factor (a BPT shape systematic); only "
                        "normalisation-type dependence can be exported to pyhf")
    # ---- POIs: unused, or 1 + c theta on every affected process
    poi_slope = {}
    probes = (1.0, -0.5, 2.0)
    for a, t_name in enumerate(pois):
        ys = []
        for v in probes:
            th = th0.copy()
            th[a] = v
            ys.append(expected(th, nu0))
        slopes = {}
        for ip, p in enumerate(procs):
            if all(_close(y[ip], y0[ip]) for y in ys):
                continue                               # p does not depend on this POI
            pos = y0[ip] > 0
            c = float(np.mean(ys[0][ip][pos] / y0[ip][pos] - 1.0)) if pos.any() else np.nan
            if not (np.isfinite(c) and all(_close(y[ip], y0[ip] * (1.0 + c * v))
                                           for v, y in zip(probes, ys))):
                raise ValueError(
                    f"channel {name!r}: process {p!r} depends on POI {t_name!r} through its "
                    "BIT ratio in a way that is not a pure normalisation (x-dependent or "
                    "quadratic); only normalisation-type dependence can be exported to pyhf")
            slopes[ip] = c
        if slopes:
            cs = np.array(list(slopes.values()))
            if not np.allclose(cs, cs[0], rtol=_RTOL):
                bad = [procs[i] for i in slopes]
                raise ValueError(f"channel {name!r}: POI {t_name!r} scales processes {bad} by "
                                 f"different factors 1 + c theta (c = {cs.tolist()}); one pyhf "
                                 "normfactor cannot express that")
            poi_slope[t_name] = (sorted(slopes), float(cs[0]))

    # ---- modifiers per sample
    cons = _constraints(channel, nu_names)
    modifiers = [[] for _ in procs]
    params = []
    for t_name, (affected, _c) in poi_slope.items():
        for ip in affected:
            modifiers[ip].append({"name": t_name, "type": "normfactor", "data": None})
        params.append({"name": t_name, "bounds": [list(NORMFACTOR_BOUNDS)], "inits": [1.0]})
    free_names = []
    for k, n in enumerate(nu_names):
        used = np.flatnonzero(log_k[:, k] != 0.0)
        if cons.get(n) is None:
            lk = log_k[used, k]
            if used.shape[0] and not np.allclose(lk, lk[0], rtol=_RTOL):
                raise ValueError(f"channel {name!r}: free-floating nuisance {n!r} scales "
                                 f"processes {[procs[i] for i in used]} by different kappas; one "
                                 "pyhf normfactor cannot express that")
            for ip in used:
                modifiers[ip].append({"name": n, "type": "normfactor", "data": None})
            if used.shape[0]:
                free_names.append(n)
                params.append({"name": n, "bounds": [list(NORMFACTOR_BOUNDS)], "inits": [1.0]})
        else:
            for ip in used:
                hi = float(np.exp(log_k[ip, k]))
                modifiers[ip].append({"name": n, "type": "normsys",
                                      "data": {"hi": hi, "lo": 1.0 / hi}})
    constrained = [n for k, n in enumerate(nu_names)
                   if cons.get(n) is not None and np.any(log_k[:, k] != 0.0)]
    exported = list(poi_slope) + free_names + constrained
    if poi is None:
        if not exported:
            raise ValueError(f"channel {name!r} has no parameter that pyhf can use as POI")
        poi = exported[0]
    elif poi not in exported:
        raise ValueError(f"poi {poi!r} is not an exported parameter of channel {name!r}; "
                         f"exported: {exported}")
    samples = [{"name": p, "data": [float(v) for v in y0[ip]], "modifiers": modifiers[ip]}
               for ip, p in enumerate(procs)]
    return {
        "channels": [{"name": name, "samples": samples}],
        "observations": [{"name": name, "data": [float(v) for v in obs]}],
        "measurements": [{"name": str(measurement),
                          "config": {"poi": poi, "parameters": params}}],
        "version": "1.0.0",
    }
