"""Stage 5, serving: the HTTP scoring service, its dynamic batcher, its metrics, and the client."""
