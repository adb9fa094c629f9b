"""defectbench: reproducible audio-defect datasets and a benchmark for defect detectors."""

__version__ = "0.1.0"
