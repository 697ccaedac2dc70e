"""Stage 3, metrics: pure numpy over scored items (no torch): preference accuracy with CIs, calibration,
RewardBench, and the label families' metrics."""
