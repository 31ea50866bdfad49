"""Recordings: the format both sides agree on (``format``) and the writer (``recorder``)."""
