"""Sources of clean audio: synth (built in), folder, fma, video."""
