"""Stage 4, training: the recipe (one loop for every task family), its setup, log, checkpoints and launcher."""
