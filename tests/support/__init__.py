"""Real-component test fixtures (mosquitto, PulseAudio, Home Assistant schema, audio); see conftest.py."""
