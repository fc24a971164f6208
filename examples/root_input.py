"""Events from a ROOT file (uproot): write a small file, read it back, train a BIT.

    pip install -e ".[root]"            # uproot + awkward
    python examples/root_input.py [--out DIR] [--quick]

Generators and analysis frameworks hand out ntuples with one branch per feature and
per weight; SMEFT samples usually carry the SM weight and its derivatives with respect to
the Wilson coefficients.  This example

1. writes ``<out>/toy_eft.root`` with a TTree ``Events``: the five features of the
   ``bpt.datasets`` toy signal, the SM weight ``weight`` and the derivative weights
   ``dw_<a>`` and ``d2w_<a>_<b>`` (w(theta) = w + theta_a dw_a + 1/2 theta_a theta_b d2w_ab),
   written in chunks as a generator would;
2. reads the branches back in chunks with ``uproot.iterate``;
3. converts the derivatives with ``bpt.coefficients_from_derivatives`` and trains a
   BoostedInformationTree, checks it against the exact coefficients and saves it to
   ``<out>/bit_from_root.bpt``.

Without uproot the script prints how to install it and exits normally.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import bpt
from bpt import datasets as ds

FEATURES = list(ds.FEATURE_NAMES)
PARS = list(ds.PARAMETER_NAMES)


def derivative_branches(y, terms):
    """(c0, c_A) of bpt.datasets -> generator-style derivative weights (a dict of branches)."""
    out = {"weight": y[:, 0]}
    for A, t in enumerate(terms):
        c = y[:, 1 + A]
        if len(t) == 1:
            out[f"dw_{PARS[t[0]]}"] = c                       # dw/dtheta_a = c_a
        elif t[0] == t[1]:
            out[f"d2w_{PARS[t[0]]}_{PARS[t[1]]}"] = 2.0 * c  # d2w/dtheta_a^2 = 2 c_aa
        else:
            out[f"d2w_{PARS[t[0]]}_{PARS[t[1]]}"] = c        # d2w/dtheta_a dtheta_b = c_ab
    return out


def write_root(path, n, chunk, seed, uproot):
    with uproot.recreate(path) as f:
        written = 0
        k = 0
        while written < n:
            m = min(chunk, n - written)
            sig = ds.make_eft_signal(m, random_state=seed + k)
            branches = {name: sig.X[:, j] for j, name in enumerate(FEATURES)}
            # make_eft_signal(m) normalises each chunk to the full yield: rescale so that
            # the weights of the whole file sum to it
            branches.update({key: v * (m / n)
                             for key, v in derivative_branches(sig.y, sig.terms).items()})
            if k == 0:
                f["Events"] = branches                         # creates the TTree
            else:
                f["Events"].extend(branches)                   # one more basket per branch
            written += m
            k += 1
    return k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="root_output", help="output folder (default ./root_output)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        import uproot
    except ImportError:
        print("uproot is not installed: this example needs the extra `root`\n"
              "    pip install -e \".[root]\"      (or: pip install uproot awkward)\n"
              "skipped.")
        return 0
    n, chunk, trees = (6_000, 2_000, 8) if args.quick else (80_000, 20_000, 80)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "toy_eft.root")

    n_chunks = write_root(path, n, chunk, args.seed, uproot)
    print(f"wrote {path}: {n} events in {n_chunks} chunks, "
          f"{os.path.getsize(path) / 1e6:.2f} MB (uproot {uproot.__version__})")

    with uproot.open(path) as f:
        tree = f["Events"]
        print(f"TTree Events: {tree.num_entries} entries, branches {tree.keys()}")

    # read back in chunks, as one would for a file that does not fit in memory
    dw_names = [f"dw_{p}" for p in PARS]
    d2w_names = {(a, b): f"d2w_{PARS[a]}_{PARS[b]}" for a in range(2) for b in range(a, 2)}
    columns = FEATURES + ["weight"] + dw_names + list(d2w_names.values())
    Xs, ys = [], []
    for batch in uproot.iterate(f"{path}:Events", columns, step_size=chunk, library="np"):
        Xs.append(np.column_stack([batch[c] for c in FEATURES]))
        ys.append(bpt.coefficients_from_derivatives(
            batch["weight"],
            {a: batch[dw_names[a]] for a in range(2)},
            {ab: batch[name] for ab, name in d2w_names.items()}))
    X, y = np.vstack(Xs), np.vstack(ys)
    print(f"read back {X.shape[0]} events in {len(Xs)} batches: X {X.shape}, "
          f"y (c0, c_A) {y.shape}; sum of SM weights {y[:, 0].sum():.1f}")

    bit = bpt.BoostedInformationTree(n_parameters=2, order=2, n_estimators=trees, max_depth=4,
                                     learning_rate=0.2, min_samples_leaf=max(20, n // 500),
                                     random_state=args.seed)
    bit.fit(X, y)
    print(f"BIT: {bit.n_iter_} trees in {bit.fit_time_:.1f} s, terms {bit.terms_}")
    test = ds.make_eft_signal(20_000, random_state=args.seed + 1000)
    err = np.sqrt(np.mean((bit.predict(test.X) - test.truth) ** 2, axis=0))
    scale = np.sqrt(np.mean(test.truth ** 2, axis=0))
    print("closure on independent events, RMS(learned - exact) / RMS(exact) per term: "
          + ", ".join(f"{t}: {e / s:.3f}" for t, e, s in zip(bit.terms_, err, scale)))
    model_path = os.path.join(args.out, "bit_from_root.bpt")
    bit.save(model_path)
    print(f"saved {model_path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
