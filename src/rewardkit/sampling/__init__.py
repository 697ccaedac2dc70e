"""Candidates from a policy: N sampled responses per prompt into a pool (`rewardkit sample`)."""

from rewardkit.sampling.pool import PoolSample, PoolScan, PoolWriter, group_by_prompt, read_pool, scan_pool

__all__ = ["PoolSample", "PoolScan", "PoolWriter", "group_by_prompt", "read_pool", "scan_pool"]
