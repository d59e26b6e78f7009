"""What training and serving share: the feature contract, MFCC, audio decoding and the TFLite runtime.

Light by design (numpy, soundfile, soxr and a TFLite runtime; the front ends are numpy alone):
this package must never import tensorflow, because it runs on the Raspberry Pi.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
