"""A distance between embeddings is written once, in ``src/simlearn/distances.py``.

The check reads the code of ``src/simlearn`` and ``stages`` (comments and strings, docstrings
included, are blanked first: a formula quoted in a docstring is documentation) and reports, as
``file:line``, every formula of a distance or similarity written anywhere else: ``cdist`` /
``pdist``, a vector norm, an L2 normalisation, a sum of squares, a matrix product with a
transpose (``x @ y.T``, ``mm``, ``einsum``, ``np.dot``), a named cosine. A line that is none of
these, although it looks like one, is listed in :data:`EXEMPT` with the reason. Fix a report by
calling the distance objects of :mod:`simlearn.distances` (``EUCLIDEAN.pairwise``,
``COSINE.rowwise``, ``normalize_embeddings``...), or, if the line truly is no distance between
embeddings, by an entry in :data:`EXEMPT` that says why.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = (ROOT / "src" / "simlearn", ROOT / "stages")
HOME = ROOT / "src" / "simlearn" / "distances.py"

#: what a distance or similarity formula looks like in code (comments and strings blanked)
PATTERNS: dict[str, re.Pattern[str]] = {
    "cdist / pdist": re.compile(r"\b[cp]dist\("),
    "vector norm": re.compile(r"\.norm\(|\bvector_norm\("),
    "L2 normalisation": re.compile(r"\bnormalize\("),
    "sum of squares": re.compile(
        r"\.pow\(2\)\.sum\(|\*\*\s*2\)\.sum\(|\.square\(\)\.sum\(|\((\w+) \* \1\)\.sum\("
    ),
    "product with a transpose": re.compile(r"@[^@#\n]*?\.(?:T\b|t\(\))|\bmm\(|\bmatmul\("),
    "dot product": re.compile(r"\beinsum\(|\bnp\.(?:dot|inner|vdot)\("),
    "named cosine or pairwise distance": re.compile(
        r"cosine_similarity|cosine_distance|pairwise_distance\("
    ),
}

#: (file relative to the repository, regex of the code line, or None for every line) -> reason
EXEMPT: dict[tuple[str, str | None], str] = {
    ("src/simlearn/data/synthetic_sketch.py", None): (
        "procedural drawing of the synthetic sketches: rotations (p @ rot.T) and lengths of pen "
        "strokes on the canvas, geometry of the picture, not a distance between embeddings"
    ),
    ("src/simlearn/data/synthetic_shapes.py", r"p @ rot\.T"): (
        "procedural drawing of the generated shapes: a rotation of the shape's corners on the "
        "canvas, geometry of the picture, not a distance between embeddings"
    ),
    ("src/simlearn/models/shallow.py", r"@ self\.weight\.T|@ vecs\.T"): (
        "the shallow baselines' linear map x W^T and its fit Sigma^{-1/2} = V diag V^T: linear "
        "algebra of a model, not a comparison of two embeddings"
    ),
    ("src/simlearn/models/two_tower.py", r"d\.pow\(2\)\.sum\(dim=1, keepdim=True\)"): (
        "sobel_magnitude: the gradient magnitude of an image, a per-pixel edge map fed to a "
        "network, not a distance between embeddings"
    ),
    ("src/simlearn/models/", r"F\.normalize\(.*dim=1\)"): (
        "the embedding networks' last layer (ModelConfig.normalize): the model puts its output "
        "on the unit sphere, part of the network that training differentiates through; no two "
        "embeddings are compared there"
    ),
    ("src/simlearn/stereo/cost_volume.py", r"cols / cols\.norm\(dim=1, keepdim=True\)"): (
        "ncc_embedding builds the NCC baseline's descriptor, a zero-mean patch scaled to unit "
        "norm with its own floor (eps=1e-6, so a flat patch stays 0): the feature extractor of "
        "a baseline, like a network's last layer; the comparison is the cost volume's"
    ),
    ("src/simlearn/training/stereo.py", r"hardest = torch\.einsum\(\s+, a, n\)"): (
        "picks, without gradient, the most similar of K candidate negatives per anchor, a "
        "batched (B, K) form; the loss itself compares the picked triplet through "
        "TripletMarginLoss(distance='dot'), the cosine of distances.COSINE (the features are unit "
        "vectors, so the dot product here ranks like it)"
    ),
    ("src/simlearn/losses/n_pair_loss.py", r"torch\.cat\(\[anchors, positives\]\)\.pow\(2\)"): (
        "the N-pair loss's L2 penalty on the embeddings' norms (Sohn 2016): a regulariser of "
        "each embedding alone, not a distance between two"
    ),
}


def _code_lines(text: str) -> list[str]:
    """The lines of ``text`` with every comment and string (docstrings too) blanked out."""
    lines = text.splitlines(keepends=True)
    blank = [list(line) for line in lines]
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        (r0, c0), (r1, c1) = tok.start, tok.end
        for r in range(r0, r1 + 1):
            row = blank[r - 1]
            start = c0 if r == r0 else 0
            end = c1 if r == r1 else len(row)
            for c in range(start, end):
                if row[c] != "\n":
                    row[c] = " "
    return ["".join(row) for row in blank]


def _exempt(rel: str, code: str) -> bool:
    for (where, pattern), _reason in EXEMPT.items():
        if not (rel == where or (where.endswith("/") and rel.startswith(where))):
            continue
        if pattern is None or re.search(pattern, code):
            return True
    return False


def find_formulas(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: [kind] code`` for every distance formula of ``path`` not exempted."""
    rel = path.resolve().relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    found = []
    for number, code in enumerate(_code_lines(path.read_text()), start=1):
        for kind, pattern in PATTERNS.items():
            if pattern.search(code) and not _exempt(rel, code):
                found.append(f"{rel}:{number}: [{kind}] {code.strip()}")
                break
    return found


def test_distances_are_written_only_in_simlearn_distances() -> None:
    files = sorted(p for d in SCANNED for p in d.rglob("*.py") if p.resolve() != HOME)
    assert len(files) > 20  # the scan sees the code base
    found = [hit for p in files for hit in find_formulas(p)]
    assert not found, (
        "distance formulas outside src/simlearn/distances.py (use its distance objects, or add "
        "a reasoned entry to EXEMPT in tests/test_distance_home.py):\n" + "\n".join(found)
    )


def test_the_home_itself_holds_the_formulas() -> None:
    assert len(find_formulas(HOME)) >= 15  # the patterns recognise real formulas


def test_a_planted_formula_is_reported_with_its_line(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""Docstrings may quote torch.cdist(a, b) and x @ y.T freely."""\n'
        "import torch\n"
        "\n"
        "# a comment may too: F.normalize(x) @ F.normalize(y).T\n"
        "def f(a, b):\n"
        "    return torch.cdist(a, b)\n"
        "def g(q, k):\n"
        "    s = 'q @ k.T'\n"
        "    return q @ k.T\n"
        "def h(x):\n"
        "    return torch.nn.functional.normalize(x, dim=1)\n"
        "def n(a, b):\n"
        "    return (a - b).pow(2).sum(1)\n"
    )
    found = find_formulas(planted, tmp_path)
    assert [hit.split(" ")[0] for hit in found] == [
        "planted.py:6:",
        "planted.py:9:",
        "planted.py:11:",
        "planted.py:13:",
    ]
    assert "[cdist / pdist] return torch.cdist(a, b)" in found[0]


def test_exemptions_name_existing_lines_and_give_a_reason() -> None:
    for (where, pattern), reason in EXEMPT.items():
        assert len(reason) > 40, where
        target = ROOT / where
        files = sorted(target.rglob("*.py")) if where.endswith("/") else [target]
        assert files and all(f.exists() for f in files), where
        if pattern is not None:  # a stale exemption is removed, not kept
            assert any(
                re.search(pattern, line) for f in files for line in _code_lines(f.read_text())
            ), where
