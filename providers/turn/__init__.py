"""Turn detectors: decide at a pause whether the user has finished speaking."""
