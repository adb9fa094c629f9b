"""Build throughput and memory of ``fma-clicks`` (issue: the spine), next to decode-only throughput.

Measures, on this machine:
- decode-only: pieces decoded (synth generation; MP3 decoding of a folder made from synth) and cut
  into segments, nothing else: the ceiling a build can reach;
- build: ``defectbench build fma-clicks`` on the same sources, 1 and 2 workers, segments/s per worker;
- peak memory (max RSS of the build process and of its workers) for two dataset sizes, to show that
  a build streams (memory flat in the dataset's size).

Each build runs in a fresh process so that its max RSS is its own. Writes the section
"Build throughput (fma-clicks)" of benchmarks/RESULTS.md.

    python benchmarks/bench_build.py [--minutes 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import machine, write_section  # noqa: E402

SEG = 16384

RUN_BUILD = """
import json, resource, sys, time
from defectbench.engine import build
t = time.perf_counter()
r = build("fma-clicks", sys.argv[1], sys.argv[2], workers=int(sys.argv[3]), progress=False)
dt = time.perf_counter() - t
segs = sum(s["samples"] for s in r.manifest["splits"].values())
print(json.dumps({"seconds": dt, "segments": segs,
                  "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

RUN_DECODE = """
import json, sys, time
from defectbench.sources import list_source
from defectbench.audio_io import convert_channels, resample
t = time.perf_counter(); segs = 0
for item in list_source(sys.argv[1]).items:
    audio, rate = item.load()
    mono = convert_channels(resample(audio, rate, 44100), 1)[0]
    segs += min(50, len(mono) // 16384)
print(json.dumps({"seconds": time.perf_counter() - t, "segments": segs}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_mp3_folder(folder: Path, minutes: float) -> None:
    """An FMA-like folder: 30 s stereo 44.1 kHz clips at 256 kbps (lameenc), one folder per artist.

    Each clip is a synth piece (20 s) followed by its first 10 s; the right channel is the left one
    delayed by 7 ms and slightly quieter, so that the two channels differ as in real music.
    """
    import lameenc
    import numpy as np

    from defectbench.sources import list_source

    for item in list_source(f"synth:{minutes}").items:
        audio, rate = item.load()
        left = np.concatenate([audio[0], audio[0][: 10 * rate]])
        right = 0.9 * np.concatenate([np.zeros(int(0.007 * rate), np.float32), left[: -int(0.007 * rate)]])
        enc = lameenc.Encoder()
        enc.set_bit_rate(256)
        enc.set_in_sample_rate(rate)
        enc.set_channels(2)
        enc.set_quality(2)
        pcm = (np.clip(np.stack([left, right], axis=1), -1, 1) * 32767).astype("<i2").tobytes()
        d = folder / item.meta["artist_id"]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{item.id}.mp3").write_bytes(bytes(enc.encode(pcm) + enc.flush()))


def marginal(small: dict, large: dict) -> tuple[float, float]:
    """Steady-state segments/s between two sizes, and the fixed start-up cost it implies (s)."""
    rate = (large["segments"] - small["segments"]) / (large["seconds"] - small["seconds"])
    return rate, small["seconds"] - small["segments"] / rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=4.0, help="synth minutes of training audio (small size; large = 3x)")
    args = ap.parse_args()
    sizes = (args.minutes, 3 * args.minutes)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = [("synth", [f"synth:{m:g}" for m in sizes])]
        mp3 = []
        for m in sizes:
            make_mp3_folder(tmp / f"mp3-{m:g}", m)
            mp3.append(f"folder:{tmp / f'mp3-{m:g}'}")
        sources.append(("FMA-like MP3s (30 s stereo, 256 kbps)", mp3))
        for label, specs in sources:
            dec = [run(RUN_DECODE, spec) for spec in specs]
            dec_rate, _ = marginal(*dec)
            rows.append(f"| {label} | decode only | 1 | {dec[0]['segments']} / {dec[1]['segments']} | "
                        f"{dec[0]['seconds']:.1f} / {dec[1]['seconds']:.1f} | {dec_rate:.0f} | {dec_rate:.0f} | - | - | - |")
            for workers in (1, 2):
                b = [run(RUN_BUILD, spec, str(tmp / f"out-{label[:5]}-{i}-{workers}"), str(workers)) for i, spec in enumerate(specs)]
                rate, fixed = marginal(*b)
                rows.append(f"| {label} | build | {workers} | {b[0]['segments']} / {b[1]['segments']} | "
                            f"{b[0]['seconds']:.1f} / {b[1]['seconds']:.1f} | {rate:.0f} | "
                            f"{rate / workers:.0f} ({100 * rate / workers / dec_rate:.0f} % of decode) | {fixed:.1f} | "
                            f"{b[1]['rss_self_mb']:.0f} | {b[1]['rss_workers_mb']:.0f} |")
        mem = []
        for minutes in (args.minutes, 4 * args.minutes):
            b = run(RUN_BUILD, f"synth:{minutes:g}", str(tmp / f"mem-{minutes:g}"), "1")
            mem.append(f"| synth:{minutes:g} | {b['segments']} | {b['rss_self_mb']:.0f} |")
    text = "\n".join([
        f"Machine: {machine()}. `python benchmarks/bench_build.py --minutes {args.minutes:g}`.", "",
        "Segments of 16384 samples per second, each build in a fresh process, at two sizes (small / large); "
        "the rate is the steady-state one between them, (segments_large - segments_small) / (seconds_large - "
        "seconds_small), so that the fixed start-up cost (imports, worker start, listing) is shown apart. "
        "Decode only: decode (or generate), resample, downmix, cut into segments; build: the whole `fma-clicks` "
        "build (clicks, WAV encoding, parquet, hashes, manifest). Max RSS in MB of the main process and of its "
        "largest worker (large build).", "",
        "| source | job | workers | segments | seconds | segments/s | per worker | fixed s | RSS main | RSS worker |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "Memory against dataset size (1 worker, in-process build):", "",
        "| source | segments | max RSS MB |", "|---|---|---|", *mem,
    ])
    write_section("Build throughput (fma-clicks)", text)
    print(text)


if __name__ == "__main__":
    main()
