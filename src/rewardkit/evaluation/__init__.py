"""Stage 4, evaluation: `rewardkit eval` on preference files or label files, and its reports."""
