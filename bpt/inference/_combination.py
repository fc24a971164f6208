"""Combination of channels (unbinned :class:`AdditiveModel` s and :class:`BinnedChannel` s)
that share parameters by name (docs/math.md, section "Binned channels and combinations").

    q(z) = sum_c q_c(z_c) + sum_{k Gaussian} (-nu_k^2 / 2 + a_k nu_k)

where q_c is channel c's term without constraints, evaluated at its own parameters z_c
(the combination's parameters it uses, picked by name); every nuisance's constraint is
counted once.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ._binned import BinnedChannel, BinnedData
from ._dataset import Dataset
from ._layout import _check_name, as_nuisances
from ._likelihood import RateError, add_gaussian_constraints, describe_point, overflow_message
from ._model import AdditiveModel
from ._statistics import Statistics
from ._toys import ToyGenerator

__all__ = ["Combination", "CombinedData", "CombinedLikelihood"]


class CombinedLikelihood:
    """Sum of channel likelihoods (each without constraint terms) plus the constraints.

    ``parts``: list of (channel likelihood without constraints, idx): the channel's
    parameter k is the combination's parameter idx[k].  ``data`` = (tuple of channel
    data, None, None, global observables (K,) or None).
    """

    def __init__(self, parts, n_pois, gaussian, names, channel_names):
        self.parts = parts
        self.n_pois = int(n_pois)
        self.gaussian = np.asarray(gaussian, dtype=bool)
        self.n_par = self.n_pois + self.gaussian.shape[0]
        self.names = names
        self.channel_names = list(channel_names)

    def describe(self, z):
        return describe_point(z, self.n_pois)

    def rate_message(self, z, n_bad, first, n_events):
        if n_bad < 0:
            return overflow_message(z, self.n_pois)
        return (f"{n_bad} event(s) / bin(s) have a predicted rate <= 0 (or not finite) at "
                f"{self.describe(z)}")

    def evaluate(self, z, data, order=0, parallel=True, hess_sample=None):
        z = np.ascontiguousarray(z, dtype=np.float64)
        n = self.n_par
        q = 0.0
        G = np.zeros(n)
        H = np.zeros((n, n))
        chans = data[0]
        for (lik, idx), d in zip(self.parts, chans):
            qc, Gc, Hc, n_bad, first = lik.evaluate(z[idx], d, order, parallel, hess_sample)
            if n_bad:
                return np.nan, G, H, n_bad, first
            q += qc
            if order >= 1:
                G[idx] += Gc
            if order >= 2:
                H[np.ix_(idx, idx)] += Hc
        with np.errstate(over="ignore", invalid="ignore"):
            q = add_gaussian_constraints(q, G, H, z, self.n_pois, self.gaussian, data, order)
        if not (np.isfinite(q) and np.all(np.isfinite(G)) and np.all(np.isfinite(H))):
            return np.nan, G, H, -1, -1
        return q, G, H, 0, -1

    def checked(self, z, data, order=0, parallel=True):
        """As ``evaluate``; a RateError names the channel (and its events / bins)."""
        z = np.ascontiguousarray(z, dtype=np.float64)
        q, G, H, n_bad, first = self.evaluate(z, data, order, parallel)
        if n_bad:
            for name, (lik, idx), d in zip(self.channel_names, self.parts, data[0]):
                try:                      # find the channel to name it and its events / bins
                    lik.checked(z[idx], d, order, parallel)
                except RateError as exc:
                    msg = str(exc)
                    raise RateError(msg if msg.startswith("channel ") else
                                    f"channel {name!r}: {msg}") from None
            raise RateError(self.rate_message(z, n_bad, first, 0))
        return q, G, H


class CombinedData:
    """Data of a :class:`Combination`: every channel's data and the global observables.

    From :meth:`Combination.prepare`, :meth:`Combination.toys` or ``asimov(...,
    return_dataset=True)``; pass it wherever the combination accepts data.
    ``data["name"]`` is channel ``name``'s data (a :class:`Dataset` or
    :class:`BinnedData`); ``global_observables`` (K,) or None.
    """

    def __init__(self, owner, parts, global_observables=None):
        self._owner = owner
        self._parts = tuple(parts)
        self.global_observables = global_observables

    def arrays(self):
        return (self._parts, None, None, self.global_observables)

    @property
    def channel_names(self):
        return [c.name for c in self._owner.channels]

    def __getitem__(self, name):
        names = self.channel_names
        if name not in names:
            raise KeyError(f"unknown channel {name!r}; channels are {names}")
        c = names.index(name)
        return self._owner.channels[c]._wrap_toy(self._parts[c])

    def __repr__(self):
        return f"CombinedData(channels={self.channel_names})"


def _combine_parts(parts, aux):
    return (tuple(parts), None, None, aux)


def _check_exactly(given, used, what, label):
    """ValueError unless the names ``given`` are exactly the channels' names ``used``."""
    missing = [n for n in used if n not in given]
    extra = [n for n in given if n not in used]
    if missing or extra:
        raise ValueError(f"{what} must be exactly the channels' {label} {used}: missing "
                         f"{missing}, not used by any channel {extra}")


class Combination(Statistics):
    """Channels that share parameters by name; the same statistics as :class:`AdditiveModel`.

    Parameters
    ----------
    channels : list of AdditiveModel / BinnedChannel
        Each with a unique ``name`` (the key of its data).
    pois : list of str, optional
        The combination's POIs in theta order (default: the channels' POIs in order of
        appearance).  Must be exactly the POIs the channels use.
    nuisances : list of Nuisance or str, optional
        In nu order (default: the union in order of appearance).  Must be exactly the
        nuisances the channels use; a nuisance shared by several channels must have the
        same constraint in each, and its constraint is counted once.

    Data (``X`` of q / fit / scan / ...): a dict {channel name: data} with, per
    channel, what that channel accepts (events X, ``(X, weight)``, a :class:`Dataset`;
    counts or :class:`BinnedData` for a binned channel), or a :class:`CombinedData`.
    ``weight``: optional dict {channel name: weights}.  Global observables belong to
    the combination (``prepare(..., global_observables=...)``); those of channel
    datasets are ignored.
    """

    def __init__(self, channels, pois=None, nuisances=None):
        channels = list(channels)
        if not channels:
            raise ValueError("give at least one channel")
        for c in channels:
            if not isinstance(c, (AdditiveModel, BinnedChannel)):
                raise ValueError("channels must be AdditiveModel or BinnedChannel objects, got "
                                 f"{type(c).__name__}")
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names} (set name= when "
                             "building the channels)")
        used_pois = []
        for c in channels:
            used_pois += [p for p in c.pois if p not in used_pois]
        used_nus = {}
        for c in channels:
            for n in c.nuisances:
                if n.name in used_nus and used_nus[n.name].constraint != n.constraint:
                    raise ValueError(f"nuisance {n.name!r} has constraint "
                                     f"{used_nus[n.name].constraint!r} in one channel and "
                                     f"{n.constraint!r} in channel {c.name!r}")
                used_nus.setdefault(n.name, n)
        if pois is None:
            pois = used_pois
        else:
            pois = [pois] if isinstance(pois, str) else [_check_name(p, "POI") for p in pois]
            if len(set(pois)) != len(pois):
                raise ValueError(f"pois must be unique, got {pois}")
            _check_exactly(pois, used_pois, "pois", "POIs")
        if nuisances is None:
            nus = list(used_nus.values())
        else:
            nus = as_nuisances(nuisances)
            given = [n.name for n in nus]
            if len(set(given)) != len(given):
                raise ValueError(f"nuisance names must be unique, got {given}")
            _check_exactly(given, list(used_nus), "nuisances", "nuisances")
            for n in nus:
                if n.constraint != used_nus[n.name].constraint:
                    raise ValueError(f"nuisance {n.name!r}: constraint {n.constraint!r} differs "
                                     f"from the channels' {used_nus[n.name].constraint!r}")
        clash = set(pois) & {n.name for n in nus}
        if clash:
            raise ValueError(f"names used both as POI and nuisance: {sorted(clash)}")
        self.channels = channels
        self.pois = list(pois)
        self.nuisances = nus
        index = {n: k for k, n in enumerate(self.parameter_names)}
        self._index = [np.array([index[n] for n in list(c.pois) + c.nuisance_names],
                                dtype=np.int64) for c in channels]
        self._lik = None
        self._last_fit = None

    @property
    def channel_names(self):
        return [c.name for c in self.channels]

    def channel(self, name):
        """The channel called ``name``."""
        if name not in self.channel_names:
            raise ValueError(f"unknown channel {name!r}; channels are {self.channel_names}")
        return self.channels[self.channel_names.index(name)]

    def _local(self, z, c):
        return np.asarray(z, dtype=np.float64)[self._index[c]]

    # ------------------------------------------------------------------ likelihood
    @property
    def likelihood_(self):
        if self._lik is None:
            parts = [(c.likelihood_.without_constraints(), idx)
                     for c, idx in zip(self.channels, self._index)]
            gaussian = np.array([n.constraint == "gaussian" for n in self.nuisances], dtype=bool)
            self._lik = CombinedLikelihood(parts, self.n_pois, gaussian,
                                           (list(self.pois), self.nuisance_names),
                                           self.channel_names)
        return self._lik

    # ------------------------------------------------------------------ data
    def prepare(self, data, weight=None, global_observables=None):
        """:class:`CombinedData` of a dict {channel name: data} (see the class docstring)."""
        if isinstance(data, CombinedData):
            if data._owner is not self:
                raise ValueError("this CombinedData was prepared for a different Combination")
            if weight is not None:
                raise ValueError("weight cannot be combined with a CombinedData")
            parts = data._parts
            aux = data.global_observables if global_observables is None else None
        else:
            if not isinstance(data, dict):
                raise ValueError("the data of a Combination must be a dict {channel name: "
                                 f"data}} or a CombinedData, got {type(data).__name__}")
            unknown = [k for k in data if k not in self.channel_names]
            missing = [k for k in self.channel_names if k not in data]
            if unknown or missing:
                raise ValueError(f"data: channels {self.channel_names} expected; missing "
                                 f"{missing}, unknown {unknown}")
            if weight is not None:
                if not isinstance(weight, dict):
                    raise ValueError("weight must be a dict {channel name: weights}")
                bad = [k for k in weight if k not in self.channel_names]
                if bad:
                    raise ValueError(f"weight: unknown channels {bad}; channels are "
                                     f"{self.channel_names}")
            parts = []
            for c in self.channels:
                entry = data[c.name]
                w = None if weight is None else weight.get(c.name)
                if isinstance(entry, tuple) and len(entry) == 2 and not isinstance(
                        entry, (Dataset, BinnedData)):
                    if w is not None:
                        raise ValueError(f"channel {c.name!r}: weight given twice")
                    entry, w = entry
                try:
                    parts.append(c._channel_data(entry, w))
                except ValueError as exc:
                    msg = str(exc)
                    raise ValueError(msg if msg.startswith("channel ") else
                                     f"channel {c.name!r}: {msg}") from None
            aux = None
        if global_observables is not None:
            aux = self._global_observables(global_observables)
        return CombinedData(self, parts, aux)

    def _data(self, X, weight=None):
        return self.prepare(X, weight).arrays()

    def _data_key(self, data):
        parts, aux = data[0], data[3]
        keys = tuple(c._data_key(d) for c, d in zip(self.channels, parts))
        h = hashlib.blake2b(b"|" if aux is None else np.ascontiguousarray(aux).tobytes(),
                            digest_size=16)
        return ("combination", keys, h.hexdigest())

    # ------------------------------------------------------------------ goodness of fit
    def goodness_of_fit(self, X, weight=None, fix=None, bounds=None):
        """Saturated-model goodness of fit of a combination of binned channels.

        Every channel must be a :class:`BinnedChannel`: the bins of all channels are
        tested together at the combined fit (``fix`` / ``bounds`` as in :meth:`fit`),
        as :meth:`BinnedChannel.goodness_of_fit` with n_free = the combination's POIs and
        free-floating nuisances not in ``fix``.  A combination with an unbinned channel
        raises ValueError naming it (test that channel alone with
        ``AdditiveModel.goodness_of_fit``: the Pearson and saturated statistics have
        different reference distributions and do not add up).
        """
        from ._gof import binned_saturated_gof, saturated_n_free
        unbinned = [c.name for c in self.channels if not isinstance(c, BinnedChannel)]
        if unbinned:
            raise ValueError(f"goodness_of_fit of a Combination needs every channel binned; "
                             f"channels {unbinned} are unbinned: test them alone with "
                             "AdditiveModel.goodness_of_fit (and the binned ones with "
                             "BinnedChannel.goodness_of_fit)")
        data = self._data(X, weight)
        lik = self.likelihood_
        controls = self._controls(fix, bounds)
        fit = self._fit_cached(lik, data, controls)
        z = np.concatenate([fit.theta, fit.nu])
        expected = [ch.likelihood_.expected(self._local(z, c))[0]
                    for c, ch in enumerate(self.channels)]
        observed = [d[0] for d in data[0]]
        return binned_saturated_gof(observed, expected, saturated_n_free(lik, controls))

    # ------------------------------------------------------------------ pseudo-data
    def asimov(self, theta, nu, return_dataset=False):
        """Asimov data at (theta, nu): {channel name: that channel's ``asimov``} ((X,
        weight) of an unbinned channel, expected counts of a binned one).
        ``return_dataset=True``: a :class:`CombinedData` whose global observables are
        ``nu`` (its MLE is (theta, nu))."""
        z = self._point(theta, nu)
        out = {}
        for c, ch in enumerate(self.channels):
            zl = self._local(z, c)
            out[ch.name] = ch.asimov(zl[:ch.n_pois], zl[ch.n_pois:])
        if return_dataset:
            return self.prepare(out, global_observables=z[self.n_pois:])
        return out

    def _toy_generator(self, z, negative_weights):
        chans = [ch._channel_toys(self._local(z, c), negative_weights)
                 for c, ch in enumerate(self.channels)]
        return ToyGenerator(chans, z[self.n_pois:], self.likelihood_.gaussian,
                            combine=_combine_parts)

    def _wrap_toy(self, data):
        return CombinedData(self, data[0], data[3])

    def _sampled_data(self, drawn, aux):
        return self.prepare(drawn, global_observables=aux).arrays()

    # ------------------------------------------------------------------ saving
    def save(self, path, allow_pickle=False):
        """Save the combination (every channel, its processes and models) to one file; read
        it back with :func:`bpt.inference.load_model`.  See :meth:`AdditiveModel.save`."""
        from ._io import save_combination
        save_combination(self, path, allow_pickle=allow_pickle)
