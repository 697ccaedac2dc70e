"""Using rewardkit models from RL trainers: TRL reward functions (`trl`) and verl custom reward modules (`verl`)."""
