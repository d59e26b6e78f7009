"""What training and evaluation do to the audio and its frames: the simulated room, crops, SpecAugment, mixup."""
