"""genre-daemon: listen, classify the genre every hop, publish over MQTT for Home Assistant."""

__version__ = "0.1.0"
