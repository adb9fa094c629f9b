"""models/weights/LINEAGE.md stays runnable: every `train` command in it parses with today's CLI and
passes its option checks (it stops only at the dataset, which the test leaves out), each step's
`--init` is the output of an earlier step, and every shipped model's chain ends in a `ship`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from defectbench.cli import main
from defectbench.weights import available

LINEAGE = Path(__file__).resolve().parent.parent / "models" / "weights" / "LINEAGE.md"


def commands() -> list[list[str]]:
    """The `defectbench` commands of the page's bash blocks, shell variables expanded."""
    out: list[list[str]] = []
    env: dict[str, str] = {}  # the page's blocks run in one shell
    for block in re.findall(r"```bash\n(.*?)```", LINEAGE.read_text(), re.S):
        for line in block.splitlines():
            line = line.split(" # ")[0].strip()
            if not line or line.startswith("#"):
                continue
            if m := re.fullmatch(r'([A-Z]+)="(.*)"', line):
                env[m[1]] = m[2]
                continue
            words = shlex.split(re.sub(r"\$([A-Z]+)", lambda v: env[v[1]], line))
            if words[0] == "defectbench":
                out.append(words[1:])
    return out


def test_every_training_step_parses_and_chains_to_a_ship(tmp_path: Path, capsys):
    cmds = commands()
    trains = [c for c in cmds if c[0] == "train"]
    ships = [c for c in cmds if c[0] == "ship"]
    assert len(trains) >= 10 and len(ships) == len(available())
    outs: set[str] = set()
    for c in trains:
        arg = {k: v for k, v in zip(c, c[1:]) if k.startswith("--")}
        if "--init" in arg:
            assert arg["--init"].rsplit("/", 1)[0] in outs, f"--init {arg['--init']}: no earlier step writes it"
        outs.add(arg["--out"])
        # the real run would read the benchmark build; without one it must stop there and nowhere earlier
        args = [tmp_path / "no-dataset" if a == arg["--dataset"] else a for a in c]
        args = [str(a) for a in args]
        args[args.index("--out") + 1] = str(tmp_path / arg["--out"])
        with pytest.raises(SystemExit) as stop:
            main(args)  # the CLI as installed: one line and exit 2 for a user error
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "is not a defectbench dataset" in err and err.count("\n") == 1, (c, err)
        assert not (tmp_path / arg["--out"]).exists()
    for c in ships:  # parses; stops at the training folder the test did not make, writing nothing
        args = [str(tmp_path / a) if a in outs or a == "runs/shipped" else a for a in c]
        with pytest.raises(SystemExit) as stop:
            main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "does not exist" in err and err.count("\n") == 1, (c, err)
        assert not (tmp_path / "runs").exists()
    shipped = {c[c.index("--recipe") + 1] for c in ships}
    assert shipped == {w.recipe for w in available()}
    assert all(c[c.index("--from") + 1] in outs for c in ships)
