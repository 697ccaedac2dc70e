"""Stage 3, tasks: what one training example is, its loss and its evaluation, per family (pairwise, listwise,
pointwise, process)."""
