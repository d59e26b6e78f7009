"""The tagger family: the frozen pretrained musicnn network + a genre head fitted here, one TFLite model."""
