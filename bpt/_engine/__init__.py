"""The tree engine shared by the BIT and the BPT (private).

One module per stage, as scikit-learn's ``ensemble/_hist_gradient_boosting``:

``_binning``    float features -> uint8 bin codes (quantile edges)
``_histogram``  per node, per feature and bin: the loss's weighted sums and counts
``_splitting``  the best split of a node from its histograms (or exact, sort-based)
``_loss``       the only part that differs between BIT and BPT: node score, leaf values,
                boosting update
``_grower``     grows one tree: partitions rows, histogram subtraction
``_predictor``  the fitted ensemble as flat arrays and the compiled tree walk

The estimators (``bpt._bit``, ``bpt._bpt``, on ``bpt._base``) are thin layers on top.
"""
