"""Issue 13's costs: decoding only what a recipe uses, and verifying a dataset's fingerprint.

1. Peak memory of decoding a 10-minute stereo 44.1 kHz file (FLAC and MP3) whole vs only the
   18.6 s (+1 s margin) that ``fma-clicks`` uses (``defectbench.audio_io.decode(path, max_seconds)``),
   each in a fresh process (peak RSS minus the RSS after imports).
2. ``defectbench verify``: recomputing the fingerprint from the parquet files (decode every row, hash
   it) vs a stored verification of the same bytes (stat + sha256 of every file), rows per second.

    python benchmarks/bench_safety.py [--pieces 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

# VmHWM (the peak RSS of this process image), not ru_maxrss: Linux keeps ru_maxrss across exec, so a
# child of a big parent would start with the parent's peak.
DECODE = r"""
import sys
from defectbench.audio_io import decode
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
base = hwm()
secs = None if sys.argv[2] == "whole" else float(sys.argv[2])
audio, rate = decode(sys.argv[1], secs)
print(audio.shape[1] / rate, (hwm() - base) / 1024)
"""


def make_long_files(folder: Path) -> dict[str, Path]:
    import lameenc
    import numpy as np
    import soundfile as sf

    from defectbench.sources.synth import generate_piece

    piece, rate = generate_piece("synth-train-0000", "pop")
    stereo = np.stack([piece[0], piece[0][::-1]], axis=1)
    ten = np.tile(stereo, (30, 1))  # 30 x 20 s = 10 minutes
    files = {"FLAC": folder / "ten.flac", "MP3 (256 kbps)": folder / "ten.mp3"}
    sf.write(files["FLAC"], ten, rate)
    enc = lameenc.Encoder()
    enc.set_bit_rate(256)
    enc.set_in_sample_rate(rate)
    enc.set_channels(2)
    enc.set_quality(2)
    files["MP3 (256 kbps)"].write_bytes(bytes(enc.encode((np.clip(ten, -1, 1) * 32767).astype("<i2").tobytes()) + enc.flush()))
    return files


def decode_rows(files: dict[str, Path]) -> list[str]:
    used = 50 * 16384 / 44100 + 1.0
    rows = []
    for fmt, path in files.items():
        for mode in ("whole", f"{used:.3f}"):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", DECODE, str(path), mode], capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - t0
            decoded, mb = out.stdout.split()
            rows.append(f"| {fmt} | {'whole file' if mode == 'whole' else 'what fma-clicks uses'} | {float(decoded):.1f} "
                        f"| {float(mb):.0f} | {seconds:.2f} |")
    return rows


def verify_rows(pieces: int, folder: Path) -> list[str]:
    from defectbench.engine import build
    from defectbench.verify import verify_dataset

    out = folder / "ds"
    build("fma-clicks", "synth", out, limit=pieces, progress=False)
    rows = []
    for label, cache in (("recomputed", False), ("stored verification", True)):
        verify_dataset(out, use_cache=True)  # warm the page cache (and store the verification)
        t0 = time.perf_counter()
        report = verify_dataset(out, use_cache=cache)
        seconds = time.perf_counter() - t0
        n = sum(report.rows.values())
        rows.append(f"| {label} | {n} | {seconds:.3f} | {n / seconds:.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pieces", type=int, default=2, help="synth pieces per split for the verify measurement")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_long_files(Path(tmp))
        dec = decode_rows(files)
        ver = verify_rows(args.pieces, Path(tmp))
    body = "\n".join([
        f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} while measuring (other jobs share it). "
        f"`python benchmarks/bench_safety.py --pieces {args.pieces}`.", "",
        "Decoding a 10-minute stereo 44.1 kHz file, each in a fresh process; MB is the growth of peak RSS (VmHWM) "
        "during the decode (float32 samples plus the decoder's buffers):", "",
        "| file | decoded | seconds of audio | MB | wall s |", "|---|---|---|---|---|", *dec, "",
        f"`defectbench verify` on `fma-clicks` from synth ({args.pieces} pieces per split, 50 segments each):", "",
        "| how | rows | seconds | rows/s |", "|---|---|---|---|", *ver,
    ])
    print(body)
    write_section("Decoding only what a recipe uses; verifying fingerprints", body)


if __name__ == "__main__":
    main()
