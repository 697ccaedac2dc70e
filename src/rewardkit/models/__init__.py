"""Stage 2, models: the reward model, its scoring spec (the one rendering path), backbones, packing, ensembles."""
