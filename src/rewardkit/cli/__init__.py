"""Stage 6, the command line: one module per verb, each a thin layer over one library function."""
