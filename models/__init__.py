"""Reference neural detectors (Hook-Net, PANN CNN6): one file per model, found by the registry."""
