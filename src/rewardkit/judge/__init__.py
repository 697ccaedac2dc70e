"""AI-judge preferences (RLAIF, Constitutional AI): principles, judges, the cache, runs and judge quality."""
