"""cmd_guard: the first command of every stage whose cmd interpolates a value of params.yaml.

    python stages/cmd_guard.py        (DVC runs it; it reads DVC_STAGE, which DVC sets)

DVC hands each line of a stage's ``cmd`` to a shell after filling in ``${key}`` and
``${item.dataset}``: an experiment named ``x;touch /tmp/pwned;x`` would run ``touch``. The check
stage (check_params) refuses such names, but ``dvc repro -s train@<name>``, ``--downstream``,
``dvc exp run`` and a single foreach item run without it. So each such stage's ``cmd`` is a list
whose first command is this one, which holds no interpolated text: DVC runs the commands of a
list one by one and stops at the first that fails, so the shell never reads the second command
when this one refuses. (One command ``guard && run ${key}`` would not do: the shell parses the
whole line, ``;`` included, before it runs anything.)

It finds the stage named by ``DVC_STAGE`` (``train@<key>``) in dvc.yaml, the ``foreach`` entry of
``<key>`` in params.yaml (read by :func:`simlearn.config.load_params`, which refuses alias bombs
and duplicate keys), fills in every ``${...}`` of the stage's ``cmd`` as DVC does, and exits 1,
naming the value, unless every filled-in value is a plain name (``^[A-Za-z0-9_-]+$``: letters,
digits, ``_`` and ``-``; a shell reads it as one word, and it is a folder name). It never writes.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: what a value filled into a cmd may look like (check_params holds keys to the same pattern)
NAME = re.compile(r"[A-Za-z0-9_-]+")
#: DVC's interpolation, ``${ name }``; ``\${`` is DVC's escape, left as text
REFERENCE = re.compile(r"(?<!\\)\$\{\s*([^}]*?)\s*\}")


class Refused(Exception):
    """A stage's command would hand the shell a value that is not a plain name."""


def stage_name(addressing: str) -> str:
    """The stage's name in its dvc.yaml: DVC_STAGE is ``[<path>/dvc.yaml:]<name>``."""
    head, sep, tail = addressing.partition(":")
    return tail if sep and Path(head).name in ("dvc.yaml", "dvc.yml") else addressing


def filled_values(name: str, stages: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """What DVC fills into the ``cmd`` of stage ``name`` (``group@key`` for a foreach item)."""
    group, at, key = name.partition("@")
    if group not in stages:
        raise Refused(f"stage {name!r}: no stage {group!r} in dvc.yaml")
    stage = stages[group]
    item: Any = None
    if at:
        if "foreach" not in stage:
            raise Refused(f"stage {name!r}: {group!r} is not a foreach stage in dvc.yaml")
        items = _lookup(params, _reference(stage["foreach"], name))
        if not isinstance(items, Mapping):
            raise Refused(f"stage {name!r}: foreach {stage['foreach']!r} is not a mapping")
        matches = [v for k, v in items.items() if str(k) == key]
        if not matches:
            raise Refused(f"stage {name!r}: {key!r} is not in {stage['foreach']} of params.yaml")
        item = matches[0]
        stage = stage.get("do", {})
    cmd = stage.get("cmd", [])
    values = []
    for line in [cmd] if isinstance(cmd, str) else cmd:
        for ref in REFERENCE.findall(str(line)):
            if ref == "key":
                values.append((ref, key))
            elif ref == "item" or ref.startswith("item."):
                values.append((ref, _lookup({"item": item}, ref)))
            else:
                values.append((ref, _lookup(params, ref)))
    for ref, value in values:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Refused(f"stage {name!r}: ${{{ref}}}={value!r} is not a name")
        if not NAME.fullmatch(str(value)):
            raise Refused(
                f"stage {name!r}: ${{{ref}}}={str(value)!r} is not allowed in a command: use "
                f"only letters, digits, '_' and '-' (^{NAME.pattern}$); rename it in "
                "params.yaml (names become folder names and command arguments in dvc.yaml)"
            )
    return [str(v) for _, v in values]


def _reference(text: Any, name: str) -> str:
    m = REFERENCE.fullmatch(str(text).strip())
    if not m:
        raise Refused(f"stage {name!r}: foreach {text!r} is not a ${{...}} of params.yaml")
    return m.group(1)


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            raise Refused(f"${{{dotted}}}: not found in params.yaml")
        data = data[part]
    return data


def main() -> int:
    addressing = os.environ.get("DVC_STAGE")
    if addressing is None:
        print(
            "cmd_guard: DVC_STAGE is not set: this command runs as the first command of a "
            "stage, under DVC (3.50 or newer sets DVC_STAGE)",
            file=sys.stderr,
        )
        return 2
    import yaml

    from simlearn.config import ConfigError, load_params

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
        stages = yaml.load(Path("dvc.yaml").read_text(), Loader=loader)["stages"]  # noqa: S506
        filled_values(stage_name(addressing), stages, load_params("params.yaml"))
    except (Refused, ConfigError, OSError, yaml.YAMLError) as e:
        print(f"cmd_guard: {e}; nothing was run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
