"""The HTML page that ``dvc plots show`` and ``dvc plots diff`` fill, with vega, vega-lite and
vega-embed inlined, so that every plot renders with no network.

Why: DVC's default page loads the three libraries from cdn.jsdelivr.net (the ``<script src>``
tags of ``dvc_render.vega.VegaRenderer.SCRIPTS``); on a machine without internet, an air-gapped
cluster for one, every plot is blank. DVC fills the page that ``plots.html_template`` names in
``.dvc/config`` instead of its own: it replaces ``{plot_divs}`` with one ``<div>`` per plot, each
calling ``vegaEmbed(id, spec)``, and ``{scripts}`` with those CDN tags. This page has no
``{scripts}``, so no tag that points at the network is written.

The libraries come from the installed vl-convert-python: ``vl_convert.javascript_bundle`` bundles
vega, vega-lite and vega-embed with their dependencies into one script, which sets the globals
``vega``, ``vegaLite`` and ``vegaEmbed``. Nothing is copied into the repository; the page is
generated (``stages/plots_template.py``) and git ignores it. The versions are those DVC's own page
loads, by major version (:data:`MAJORS`: vega 5, vega-lite 5, vega-embed 6; DVC's templates
declare the vega-lite v5 schema): vl-convert-python 1.7 bundles vega 5.30 and vega-embed 6.26, and
the page takes the newest vega-lite 5.x it offers (5.21). Later vl-convert-python releases bundle
vega 6, which runs these specs but warns on each plot that they were compiled for vega 5; a
bundle of another major version is refused here, naming the versions.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

#: the major versions of DVC's own page (``dvc_render.vega.VegaRenderer.SCRIPTS``: vega@5.20.2,
#: vega-lite@5.2.0, vega-embed@6.18.2; its templates' ``$schema`` is vega-lite v5), which its
#: specs are written for; tests/test_plots_offline.py checks them against the installed DVC
MAJORS = {"vega": 5, "vega-lite": 5, "vega-embed": 6}

#: the placeholders DVC replaces in the page (``dvc_render.html.HTML``), by plain text replacement:
#: a bundle holding one of them would be edited by DVC, so it is refused
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

_PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- {versions}; written by stages/plots_template.py from vl-convert-python, no network -->
    <script type="text/javascript">
{bundle}
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def _major(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


def vega_lite_version(offered: Sequence[str], major: int = MAJORS["vega-lite"]) -> str:
    """The newest ``<major>.<minor>`` among ``offered`` (``vl_convert.get_vegalite_versions()``,
    e.g. ``["5.8", "5.21", "6.4"]`` -> ``"5.21"``: compared as numbers, not as text)."""
    same_major = [v for v in offered if _major(v) == major]
    if not same_major:
        raise ValueError(
            f"vl-convert-python offers vega-lite {list(offered)}, none {major}.x, the version of "
            f"DVC's plot specs: install the vl-convert-python that pyproject.toml pins"
        )
    return max(same_major, key=lambda v: tuple(int(p) for p in v.split(".")))


def check_majors(versions: dict[str, str]) -> None:
    """Raise unless each library's major version is the one DVC's specs are written for
    (:data:`MAJORS`); ``versions``: library -> version, e.g. ``{"vega": "5.30.0", ...}``."""
    wrong = {k: v for k, v in versions.items() if _major(v) != MAJORS[k]}
    if wrong:
        want = ", ".join(f"{k} {MAJORS[k]}.x" for k in wrong)
        raise ValueError(
            f"vl-convert-python bundles {wrong}; DVC's plot specs are written for {want}: "
            "install the vl-convert-python that pyproject.toml pins (1.7 bundles vega 5.30, "
            "vega-embed 6.26)"
        )


def page(bundle: str, versions: str) -> str:
    """The template text: ``bundle`` (JavaScript that defines ``vegaEmbed``) inlined in the head,
    ``{plot_divs}`` in the body for DVC, ``{refresh_tag}`` for ``--refresh``; no ``{scripts}``."""
    for placeholder in PLACEHOLDERS:
        if placeholder in bundle:
            raise ValueError(
                f"the JavaScript bundle contains {placeholder!r}, which DVC would replace inside "
                "the script: use another vl-convert-python version"
            )
    if "</script" in bundle.lower():
        raise ValueError(
            "the JavaScript bundle contains '</script', which would end the inline <script> "
            "early: use another vl-convert-python version"
        )
    return _PAGE.replace("{versions}", versions).replace("{bundle}", bundle)


def write_template(path: Path) -> str:
    """Write the page to ``path`` (only when its bytes change, so its time stamp says when the
    libraries did); the versions it holds, e.g. ``vega 6.2.0, vega-lite 5.21, ...``."""
    import vl_convert

    found = {
        "vega": vl_convert.get_vega_version(),
        "vega-lite": vega_lite_version(vl_convert.get_vegalite_versions()),
        "vega-embed": vl_convert.get_vega_embed_version(),
    }
    check_majors(found)
    versions = ", ".join(f"{k} {v}" for k, v in found.items())
    versions += f" (vl-convert-python {importlib.metadata.version('vl-convert-python')})"
    text = page(vl_convert.javascript_bundle(vl_version=found["vega-lite"]), versions)
    path = Path(path)
    if not path.exists() or path.read_text(encoding="utf8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf8")
        tmp.replace(path)  # a killed run leaves no half page for DVC to fill
    return versions
