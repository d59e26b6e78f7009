"""Keras -> int8 TFLite, and the float/int8 parity check."""
