"""Quality benchmark: geotower vs tuned peers on validation carved from the real training files (see run.py)."""
