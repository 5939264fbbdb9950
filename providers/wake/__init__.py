"""Wake-word detectors: what wakes VoxDesk when activation is set to the wake word."""
