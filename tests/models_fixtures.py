"""Tiny datasets in the engine's on-disk format (SPEC 2; HELPERS.md "Dataset format") for the model tests.

Written directly with pyarrow so that the model tests do not depend on the engine: ``data/<split>-00000-of-00001.parquet``
with ``id``, ``audio`` {bytes: WAV, path: null}, ``target`` list<uint8>, ``label`` int, ``split``, and ``manifest.json``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16" if audio.dtype == np.int16 else "FLOAT")
    return buf.getvalue()


def write_split(root: Path, split: str, rows: list[dict], rate: int, row_group_size: int = 8) -> None:
    table = pa.table({
        "id": [r["id"] for r in rows],
        "audio": [{"bytes": wav_bytes(r["audio"], rate), "path": None} for r in rows],
        "target": pa.array([r["target"].tolist() for r in rows], type=pa.list_(pa.uint8())),
        "label": pa.array([r["label"] for r in rows], type=pa.int64()),
        "split": [split] * len(rows),
    })
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "data" / f"{split}-00000-of-00001.parquet", row_group_size=row_group_size)


def click_dataset(root: Path, counts=(24, 8, 8), seed: int = 0) -> Path:
    """16384-sample noise segments, half with one loud 2-sample click; 128-frame targets (SPEC 1.1)."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "validation", "test"), counts):
        rows = []
        for i in range(n):
            audio = (0.05 * rng.standard_normal(16384)).astype(np.float32)
            target = np.zeros(128, np.uint8)
            if i % 2 == 0:
                pos = int(rng.integers(0, 16382))
                audio[pos : pos + 2] = 0.9
                target[pos // 128] = target[(pos + 1) // 128] = 1
            rows.append({"id": f"{split}-{i}", "audio": audio, "target": target, "label": int(target.any())})
        write_split(root, split, rows, 44100)
    (root / "manifest.json").write_text(json.dumps({
        "recipe": "test-clicks", "task": "framewise", "label_names": ["clean", "click"],
        "fingerprint": "test", "splits": dict(zip(("train", "validation", "test"), counts)), "seed": seed,
    }))
    return root


def video_dataset(root: Path, counts=(20, 10, 5), seed: int = 0) -> Path:
    """1 s int16 chunks at 48 kHz, labels cycling over the five classes (SPEC 1.4 layout)."""
    rng = np.random.default_rng(seed)
    t = np.arange(48000) / 48000
    for split, n in zip(("train", "validation", "test"), counts):
        rows = []
        for i in range(n):
            label = i % 5
            x = 3000 * np.sin(2 * np.pi * 440 * t) + 300 * rng.standard_normal(48000)
            if label == 1:
                x += 4000 * np.sin(2 * np.pi * 60 * t)  # hum
            elif label == 2:
                x += rng.uniform(-4000, 4000, 48000)  # hiss
            elif label == 3:
                x = np.clip(x, -800, 800)  # distortion
            elif label == 4:
                x[24000] += 30000  # click
            audio = np.clip(np.round(x), -32768, 32767).astype(np.int16)
            rows.append({"id": f"{split}-{i}", "audio": audio, "target": np.zeros(100, np.uint8), "label": label})
        write_split(root, split, rows, 48000)
    (root / "manifest.json").write_text(json.dumps({
        "recipe": "test-video", "task": "multiclass",
        "label_names": ["no_defect", "hum", "hiss", "distortion", "click"],
        "fingerprint": "test", "splits": dict(zip(("train", "validation", "test"), counts)), "seed": seed,
    }))
    return root
