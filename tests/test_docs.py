"""The README and docs/*.md: links and images resolve, the README stays short, every
`keras-transfer ...` command shown in a bash block is accepted by the CLI's own parser, and the
`make` targets the README names exist."""

from __future__ import annotations

import re
import shlex
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (links there are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = text.replace("`", "").replace("*", "").strip().lower()
    return "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM").replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = _slug(heading.group(1))
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def _links(path: Path) -> list[str]:
    prose = _prose(path.read_text())
    return LINK.findall(prose) + re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", prose)


def test_slugs_follow_github():
    assert _slug('Predict and "unknown" images') == "predict-and-unknown-images"
    assert _slug("Accuracy from the weights we have: stages, mirror views, ensembles") == \
        "accuracy-from-the-weights-we-have-stages-mirror-views-ensembles"
    assert _slug("Set-up: two commands") == "set-up-two-commands"
    assert _slug("Localisation benchmark (pets3)") == "localisation-benchmark-pets3"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_resolves(page):
    links = _links(page)
    assert links or page == README, "a docs page links back to the README at least"
    broken = []
    for link in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I):  # http:, https:, mailto: ...: not checked here
            continue
        target, _, anchor = link.partition("#")
        file = (page.parent / target).resolve() if target else page
        if not file.exists():
            broken.append(f"{link}: no file {file}")
        elif anchor and (file.suffix != ".md" or anchor not in _anchors(file)):
            broken.append(f"{link}: no heading '#{anchor}' in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_docs_pages_are_linked_from_the_readme():
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _links(README)}
    pages = set(p.resolve() for p in PAGES[1:]) | {(ROOT / "ARCHITECTURE.md").resolve()}
    assert pages <= linked, sorted(p.name for p in pages - linked)
    for image in ("docs/serve-page.png", "docs/audit-report.png", "docs/localize_pets3.png"):
        assert any(image.split("/")[1] in p.read_text() for p in PAGES), f"{image} is shown nowhere"


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_the_photographers_are_credited_from_the_readme():
    assert "keras_transfer/data/demo/flowers/LICENSE.txt" in _links(README)


def test_the_exported_example_is_the_same_in_readme_and_deploy():
    example = re.compile(r"<!-- exported-example -->\n```python\n(.*?)```", re.S)
    assert example.search(README.read_text()).group(1) == \
        example.search((ROOT / "docs" / "deploy.md").read_text()).group(1)


def _shell_commands(text: str) -> list[str]:
    """Each command of the bash blocks: backslash continuations joined, `$ ` prompts stripped."""
    commands = []
    for language, body in FENCE.findall(text):
        if language not in ("bash", "sh", "shell", "console"):
            continue
        body = re.sub(r"\\\n\s*", " ", body)
        for line in body.splitlines():
            line = re.sub(r"^\s*\$\s+", "", line).strip()
            if line:
                commands.append(line)
    return commands


def _cli_argvs() -> list[tuple[str, list[str]]]:
    """(where, argv) for every keras-transfer command; a `[optional part]` is tried with and without."""
    found = []
    for page in PAGES:
        for line in _shell_commands(page.read_text()):
            words = shlex.split(line, comments=True)
            for cut in (i for i, w in enumerate(words) if w in ("&&", "||", ";", "|")):
                words = words[:cut]  # only the first command of a chain
                break
            if not words or Path(words[0]).name != "keras-transfer":
                continue
            rest = shlex.join(words[1:]) if "[" not in line else line.split("keras-transfer", 1)[1].split("#", 1)[0]
            variants = {re.sub(r"\[([^\[\]]*)\]", r"\1", rest), re.sub(r"\s*\[[^\[\]]*\]", "", rest)}
            for variant in sorted(variants):
                found.append((f"{page.name}: {line}", shlex.split(variant)))
    return found


CLI_ARGVS = _cli_argvs()


def test_the_docs_show_commands():
    pages = {where.split(":")[0] for where, _ in CLI_ARGVS}
    assert "README.md" in pages and len(CLI_ARGVS) >= 40, len(CLI_ARGVS)


@pytest.mark.parametrize("where, argv", CLI_ARGVS, ids=[" ".join(a)[:80] for _, a in CLI_ARGVS])
def test_every_shown_command_is_accepted_by_the_cli_parser(where, argv, capsys):
    from keras_transfer.cli import build_parser

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:
        if "--help" in argv or "-h" in argv:
            assert stop.code == 0
            return
        pytest.fail(f"{where}\nrefused by the parser: {capsys.readouterr().err.strip()}")
    assert args.command == argv[0]


def test_the_make_targets_the_docs_name_exist():
    def named(page):
        return {words[1] for words in (shlex.split(line, comments=True) for line in _shell_commands(page.read_text()))
                if len(words) >= 2 and words[0] == "make"}

    assert {"demo", "test"} <= named(README)
    targets = set().union(*map(named, PAGES))
    makefile_targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for target in sorted(targets):
        assert target in makefile_targets, f"the README names `make {target}`; the Makefile has no such target"
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
