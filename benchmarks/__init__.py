"""Analysis and benchmark tools for UR4Rec runs (never imported by the product): ``python -m benchmarks``."""
