"""`dvc plots show` and `dvc plots diff` as a user without internet sees them, in a real browser.

DVC's default page loads vega from a CDN, so offline every plot is blank; the project's page
(``.dvc/config`` plots.html_template, written by the ``plots_template`` stage from the installed
vl-convert-python, :mod:`simlearn.plots.dvc_template`) inlines vega, vega-lite and vega-embed.

The slow tests (here and at the end of tests/test_pipeline.py, which reuses that module's
``dvc repro`` of a small params.yaml in a temporary copy of the repo, as a fresh clone would: PR,
ROC and training curves) run ``dvc plots show`` and ``dvc plots diff``, open each page in
headless chromium with every request that is not a local file aborted, and check every plot:
its canvas holds the curve (coloured pixels along the line) wherever its file has two points or
more, each image plot decoded. The project's committed reports/ (every task: stereo's accuracy
against the error threshold too) get the same check. DVC's default page, opened the same way,
must come out blank: the check sees what it claims to. A screenshot goes to the test's folder
(reports/ui/dvc_plots_offline.png is one such). Skipped only where no chromium can be found.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.test_mlflow_ui import BROWSER_FLAGS, _chromium
from tests.test_own_images_pipeline import _repo

from simlearn.plots import dvc_template

ROOT = Path(__file__).resolve().parents[1]
#: a curve's stroke: pixels whose channels spread by more than this (grey axes, black text: 0)
COLOURED = 60
#: coloured pixels a curve of two points or more draws at least: it spans the plot's width,
#: about 300 px at 2 px; the legend's one dot alone is about 90
CURVE_PIXELS = 250

#: per plot <div> of DVC's page: whether it holds a canvas, its coloured and its drawn pixels,
#: and each image's decoded width
_INSPECT = """() => Array.from(document.querySelectorAll('body > div[id]')).map(div => {
  const out = {id: div.id, canvas: false, coloured: 0, drawn: 0,
               images: Array.from(div.querySelectorAll('img')).map(i => i.naturalWidth)};
  const c = div.querySelector('canvas');
  if (c && c.width && c.height) {
    out.canvas = true;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      out.drawn++;
      const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
      if (hi - lo > COLOURED) out.coloured++;
    }
  }
  return out;
})""".replace("COLOURED", str(COLOURED))


def _dvc(repo: Path, env: dict, *args: str) -> str:
    res = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, f"dvc {' '.join(args)}:\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
    return res.stdout


def _plot_files(repo: Path) -> dict[str, Path]:
    """DVC's <div> id (its ``remove_special_chars`` of the path) -> file, for every file that
    dvc.yaml's plots name: reports/curves and reports/train, every file in them."""
    files = [p for d in ("reports/curves", "reports/train") for p in (repo / d).rglob("*")]
    table = str.maketrans({c: "_" for c in r"!@#$%^&*()[]{};,<>?\/:.|`~=_+ "})
    return {p.relative_to(repo).as_posix().translate(table): p for p in files if p.is_file()}


def _points(csv: Path) -> int:
    """The points the linear template draws: rows with both x and y (``x``/``y``, or the
    training curves' ``epoch``/``loss``)."""
    df = pd.read_csv(csv)
    x, y = ("x", "y") if "x" in df else ("epoch", "loss")
    return int(df[[x, y]].dropna().shape[0])


def _open_offline(html: Path, shot: Path | None = None) -> tuple[list[dict], list[str], list[str]]:
    """(per plot <div>: what _INSPECT reads; requests aborted; page errors) of ``html`` opened
    in headless chromium where only file:// requests are served."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    executable = _chromium()
    blocked: list[str] = []
    errors: list[str] = []

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort("internetdisconnected")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=BROWSER_FLAGS)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.route("**/*", route)
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.as_uri(), wait_until="load", timeout=120_000)
            # vegaEmbed draws asynchronously: wait until every vega <div> has its canvas
            page.wait_for_function(
                """() => typeof vegaEmbed === 'undefined' || Array.from(
                    document.querySelectorAll('body > div[id]')).every(d =>
                    !d.querySelector('script') || d.querySelector('canvas'))""",
                timeout=120_000,
            )
            page.wait_for_timeout(500)
            found = page.evaluate(_INSPECT)
            if shot is not None:
                page.screenshot(path=str(shot))
        finally:
            browser.close()
    return found, blocked, errors


def _check_every_plot_drawn(repo: Path, found: list[dict]) -> None:
    files = _plot_files(repo)
    by_id = {f["id"]: f for f in found}
    assert sorted(by_id) == sorted(files), sorted(set(files) ^ set(by_id))
    for plot_id, path in files.items():
        got = by_id[plot_id]
        if path.suffix == ".png":
            assert got["images"] and min(got["images"]) > 100, (plot_id, got)
            continue
        assert got["canvas"] and got["drawn"] > 2000, (plot_id, got)  # axes, labels, legend
        if _points(path) >= 2:
            assert got["coloured"] > CURVE_PIXELS, (plot_id, got)


# ----------------------------------------------------------------------------- the page itself


def test_vega_lite_version_is_the_newest_of_dvc_s_major_compared_as_numbers():
    assert dvc_template.vega_lite_version(["5.8", "5.21", "5.14", "6.4"]) == "5.21"
    assert dvc_template.vega_lite_version(["5.9", "5.10"]) == "5.10"
    with pytest.raises(ValueError, match=r"none 5\.x"):
        dvc_template.vega_lite_version(["6.1", "6.4"])


def test_a_bundle_of_another_major_version_is_refused_naming_it():
    dvc_template.check_majors({"vega": "5.30.0", "vega-lite": "5.21", "vega-embed": "6.26.0"})
    with pytest.raises(ValueError, match=r"'vega': '6\.2\.0'.*vega 5\.x"):
        dvc_template.check_majors({"vega": "6.2.0", "vega-lite": "5.21", "vega-embed": "6.26.0"})


def test_majors_are_those_of_the_installed_dvc_s_own_page_and_templates():
    # a DVC upgrade that moves its specs to another vega major fails here, not in a browser
    from dvc_render import vega_templates
    from dvc_render.vega import VegaRenderer

    cdn = dict(re.findall(r"npm/(vega(?:-lite|-embed)?)@(\d+)\.", VegaRenderer.SCRIPTS))
    assert {k: int(v) for k, v in cdn.items()} == dvc_template.MAJORS
    schemas = {
        json.dumps(t.DEFAULT_CONTENT).split('"$schema": "')[1].split('"')[0]
        for t in vega_templates.TEMPLATES
    }
    assert schemas == {"https://vega.github.io/schema/vega-lite/v5.json"}


def test_page_inlines_the_bundle_with_dvc_s_placeholders_and_no_cdn_tag():
    text = dvc_template.page("window.vegaEmbed = function () {};", "vega 5.30.0")
    assert "{plot_divs}" in text and "{refresh_tag}" in text
    assert "{scripts}" not in text  # where DVC would write its CDN <script src> tags
    assert "window.vegaEmbed = function () {};" in text and "src=" not in text
    for bad in ("x = '{plot_divs}';", "s = '</script>';"):
        with pytest.raises(ValueError, match="bundle contains"):
            dvc_template.page(bad, "v")


def test_the_written_page_holds_the_pinned_libraries_and_is_rewritten_only_on_change(tmp_path):
    out = tmp_path / "t.html"
    versions = dvc_template.write_template(out)
    assert re.match(r"vega 5\.\d+\.\d+, vega-lite 5\.\d+, vega-embed 6\.\d+\.\d+ ", versions)
    text = out.read_text(encoding="utf8")
    assert len(text) > 500_000 and "https://cdn" not in text and versions in text
    mtime = out.stat().st_mtime_ns
    dvc_template.write_template(out)
    assert out.stat().st_mtime_ns == mtime


def test_dvc_config_names_the_page_the_stage_writes():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc/config")
    named = (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["plots_template"]
    outs = [o if isinstance(o, str) else next(iter(o)) for o in stage["outs"]]
    assert [str(ROOT / o) for o in outs] == [str(named)]
    assert stage["cmd"].split()[-1] == named.relative_to(ROOT).as_posix()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", named.relative_to(ROOT).as_posix()], cwd=ROOT
    )
    assert ignored.returncode == 0, "git must ignore the generated page"


# ----------------------------------------------------------------------------- in the browser


@pytest.mark.slow
def test_the_committed_reports_render_offline(tmp_path):
    """Every plot of the project's own reports/ (all tasks: SBIR's seen/unseen PR curves, the
    stereo ablations, every training history), with the page the stage writes."""
    repo, env = _repo(tmp_path, {})
    for d in ("reports/curves", "reports/train"):
        shutil.copytree(ROOT / d, repo / d)
    _dvc(repo, env, "repro", "plots_template")
    _dvc(repo, env, "plots", "show")
    shot = tmp_path / "dvc_plots_offline.png"  # reports/ui/dvc_plots_offline.png is one
    found, blocked, errors = _open_offline(repo / "dvc_plots/index.html", shot=shot)
    assert not blocked and not errors, (blocked, errors)
    _check_every_plot_drawn(repo, found)
    assert shot.stat().st_size > 20_000
    kinds = {p.name for p in _plot_files(repo).values()}
    assert {"pr.csv", "roc.csv", "accuracy.csv", "history.csv", "pr_unseen.csv"} <= kinds
