"""Speech engines. Each turns text into 44.1 kHz mono audio behind one interface."""
