"""Make the real-music folder that the shipped music weights were trained and checked on (issue 11).

    python benchmarks/real_music_folder.py DIR [--games /usr/share/games]

The model cards' ``--source synth:N+folder:DIR`` and ``benchmarks/bench_real_music.py DIR`` name a
folder of eleven free songs from three Debian packages, in the ``folder:`` source's
train/validation/test layout (one folder per song, so a song never spans two splits):

    apt-get install fretsonfire-songs-muldjord fretsonfire-songs-sectoid asc-music

This script makes that folder from the installed packages with symbolic links (no audio is copied,
none ships): each Frets on Fire song's full mix ``song.ogg`` (its ``guitar.ogg`` stem is left out) and
the three asc-music MP3s as one folder. The split below is the one the shipped weights used: training
draws from the six ``train`` songs only; the ``validation`` song and the four ``test`` files were never
trained on, and the RESULTS figures "on real songs" pool those five (``--splits validation,test``).

DIR must not exist or be an empty folder: the script writes only there and never replaces a file.
A missing package is one line and exit 2, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FOF = Path("fretsonfire/data/songs")
SPLIT: dict[str, dict[str, list[Path]]] = {
    "train": {
        "muldjord_armygeddon": [FOF / "muldjord/armygeddon/song.ogg"],
        "muldjord_chaos_god": [FOF / "muldjord/chaos_god/song.ogg"],
        "muldjord_internal_degeneration": [FOF / "muldjord/internal_degeneration/song.ogg"],
        "muldjord_mutilated_mime": [FOF / "muldjord/mutilated_mime/song.ogg"],
        "sectoid_Escape_from_chaosland": [FOF / "sectoid/Escape from chaosland/song.ogg"],
        "sectoid_Feelings": [FOF / "sectoid/Feelings/song.ogg"],
    },
    "validation": {
        "sectoid_Metal_madness": [FOF / "sectoid/Metal madness/song.ogg"],
    },
    "test": {
        "sectoid_War_of_freedom": [FOF / "sectoid/War of freedom/song.ogg"],
        "asc": [Path("asc/music") / f"{name}.mp3" for name in ("frontiers", "machine_wars", "time_to_strike")],
    },
}
PACKAGES = {"muldjord": "fretsonfire-songs-muldjord", "sectoid": "fretsonfire-songs-sectoid", "asc": "asc-music"}


def links(games: Path) -> list[tuple[Path, Path]]:
    """``(link inside DIR, installed file)`` for every song file, in a fixed order."""
    return [(Path(split) / song / f.name, games / f)
            for split, songs in SPLIT.items() for song, files in songs.items() for f in files]


def package_of(path: Path) -> str:
    return next(p for key, p in PACKAGES.items() if key in path.parts)


def make(out: Path, games: Path) -> list[Path]:
    """Link the songs under ``out`` and return the links; a missing package or a used ``out``: ValueError,
    raised before anything is written."""
    pairs = links(games)
    missing = sorted({package_of(target) for _, target in pairs if not target.is_file()})
    if missing:
        raise ValueError(f"not installed under {games}: {', '.join(missing)} (apt-get install {' '.join(missing)})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; name a new one")
    made = []
    for link, target in pairs:
        (out / link).parent.mkdir(parents=True, exist_ok=True)
        (out / link).symlink_to(target.resolve())
        made.append(out / link)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--games", type=Path, default=Path("/usr/share/games"), help="where the packages install")
    args = ap.parse_args(argv)
    try:
        made = make(args.folder, args.games)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split in SPLIT:
        print(f"{split}: {', '.join(SPLIT[split])}")
    print(f"{len(made)} links under {args.folder}; use it as folder:{args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
