"""Models: binarizers (``quantizers``), D-FSMN layers (``layers``), teacher and student (``dfsmn``)."""
