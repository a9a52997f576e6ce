"""Datasets: Google Speech Commands, the built-in synthetic keyword set, audio I/O, tf.data."""
