"""What training and serving share: the feature contract, MFCC, audio decoding and the TFLite runtime.

Light by design (numpy, scipy, python_speech_features, soundfile, soxr and a TFLite runtime):
this package must never import tensorflow, because it runs on the Raspberry Pi.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
