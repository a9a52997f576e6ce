"""Models: binarizers (``quantizers``), D-FSMN layers (``layers``), the teacher and the
thinnable student (``dfsmn``)."""
