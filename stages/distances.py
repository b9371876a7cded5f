"""distances: test mAP of experiments' embeddings under every distance x normalisation.

    python stages/distances.py <out_prefix> <embeddings.npz> [<embeddings.npz> ...]

Writes <out_prefix>.md (one table per experiment: a row per distance L1, L2, L-infinity,
cosine, dot product; a column per normalisation none, l2, sqrt) and <out_prefix>.csv (every
row: experiment, distance, normalize, map, map_at_r, precision_at_1, n_queries). An experiment is
named by its file's stem (data/embeddings/triplet.npz -> triplet). Protocol: that of
``evaluate`` (see simlearn.evaluation.distance_table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

INTRO = """# Distances and normalisations

What the choice of distance and of normalisation does to retrieval, on the same embeddings:
test mAP (the test split is both query set and gallery). `l2` puts every vector on the unit
sphere, where L2, cosine and dot product rank alike; `sqrt` is unit(sign(x) * sqrt(|x|)), which
damps the few large components that otherwise dominate a distance. Set an experiment's
`eval.distance` and `eval.normalize` in params.yaml to evaluate and search with another choice.
Written by `stages/distances.py`; every figure in `distances.csv`.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out_prefix", type=Path)
    p.add_argument("embeddings", type=Path, nargs="+")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    from simlearn.evaluation.distance_table import distance_table, distance_table_markdown

    tables = {}
    for path in args.embeddings:
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `dvc repro embed@{path.stem}`")
        with np.load(path, allow_pickle=False) as z:
            tables[path.stem] = distance_table({k: z[k] for k in z.files})
    out = args.out_prefix
    out.parent.mkdir(parents=True, exist_ok=True)
    df = pd.concat([t.assign(experiment=name) for name, t in tables.items()], ignore_index=True)
    df = df[["experiment", *[c for c in df.columns if c != "experiment"]]]
    df.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6f")
    out.with_suffix(".md").write_text(INTRO + "\n" + distance_table_markdown(tables))
    for name, t in tables.items():
        best = t.loc[t["map"].idxmax()]
        print(f"[{name}] best test mAP {best['map']:.4f}: {best['distance']} / {best['normalize']}")
    return df


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    main()
