"""Compiled backends of the spaces' ops (the 1D CNN over K trials: ``fused_cnn``)."""
