"""Run directories, atomic files and checkpoints."""
