"""Datasets (built-in and files) and the batching pipeline."""
