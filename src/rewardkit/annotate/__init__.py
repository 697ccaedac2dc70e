"""Collecting human preferences: the pairwise annotation app (`rewardkit annotate`), its store, agreement
statistics, and item import / answer export."""
