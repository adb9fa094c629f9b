"""Classical detectors (Essentia SigClick, the 5-way audio-problem baseline): one file per detector."""
