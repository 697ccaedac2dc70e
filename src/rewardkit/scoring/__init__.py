"""Stage 5, scoring: batch scoring of files with a trained model."""
