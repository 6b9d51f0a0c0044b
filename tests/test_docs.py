"""The README and docs/ as a reader uses them: every docs page is linked from the README, every relative link
and every repository path they name exists, and every command line of their bash blocks is one the tools accept
as written.

`rlhf-bench ...` (and `torchrun`/`accelerate launch ... -m bench.app ...`) lines are composed in process, as
`rlhf-bench <args> --cfg job` would compose them (about 0.1 s a line where a subprocess takes 3-5 s), with Hydra's
own config (`return_hydra_config=True`), so `hydra/launcher=...`, `hydra.*` keys, `+tune=<algo>` and the sweeper's
keys are checked too, and then typed as the app types them (`bench.config.to_object`: unknown keys, wrong types,
values out of range). A swept key (`a,b`, `range(...)`, `tag(log, interval(lo, hi))`) takes its first value, except
`algo`: each algorithm a sweep runs (the command's, else the sweep's own `hydra.sweeper.params.algo`) is composed.
Placeholders (`<hub id>`) and the optional brackets of a usage line (`[--sweep TAG]`) are left out.
`rlhf-bench-tune` lines go through `bench.tune.parse` and their forwarded arguments are composed with each search's
`+tune=<algo>`; `rlhf-bench-results` and `rlhf-bench-dashboard` lines may use only flags their `--help` lists;
`bash`/`python` lines must name a script or module that exists. Nothing runs, downloads or needs a GPU."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict

from bench.app import CONF_DIR
from bench.config import to_object

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# Hydra's command-line flags: those that take a value, and those that do not (`hydra.main`'s parser)
HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}
HYDRA_FLAGS = {"-m", "--multirun", "--help", "-h", "--hydra-help", "--resolve", "--version", "--info", "-i"}
# commands a page may show without a check of their own: the install
UNCHECKED = {"pip"}


def _strip_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- links and paths -------------------------------------------------------------------------------------------


def _links(page: Path) -> list[str]:
    """The targets of the page's Markdown links and images, code left out."""
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", _strip_code(page.read_text()))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters of any script kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _strip_code(page.read_text()), re.MULTILINE)}


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no page"
    linked = {
        (README.parent / link.split("#")[0]).resolve() for link in _links(README) if not link.startswith(("http:", "https:", "#"))
    }
    missing = [_rel(page) for page in DOCS if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_resolves(page):
    broken = []
    for link in _links(page):
        if link.startswith(("http:", "https:", "mailto:")):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {target})")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link} (no heading #{anchor} in {_rel(target)})")
    assert not broken, f"{_rel(page)}: broken links: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_repository_path_named_exists(page):
    """`bench/...`, `conf/...`, `scripts/...`, `tests/...`, `results/...`, `docs/...` in the text or its code (up to a
    placeholder: `bench/algos/<name>.py` is checked as `bench/algos/`) name files of this checkout."""
    named = re.findall(r"(?<![\w/.<>-])(?:bench|conf|scripts|tests|results|docs)/[\w./-]*[\w/]", page.read_text())
    missing = sorted({p for p in named if not (ROOT / p).exists()})
    assert not missing, f"{_rel(page)} names paths that do not exist: {missing}"


# --- commands --------------------------------------------------------------------------------------------------


def _command_lines(page: Path) -> list[list[str]]:
    """Every command of the page's bash blocks as argv: continuation lines joined, comments, leading environment
    assignments, placeholders and usage brackets left out, `a && b` split in two."""
    blocks = re.findall(r"^```(?:bash|sh|shell|console)\n(.*?)^```", page.read_text(), re.DOTALL | re.MULTILINE)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\S*<[^<>]*>\S*", "", line)  # `prefs.dataset=<hub id or save_to_disk dir>`
            words = [w for w in shlex.split(line, comments=True) if w not in ("[", "]")]
            words = [w.removeprefix("[") for w in words]
            words = [w[:-1] if w.endswith("]") and w.count("[") < w.count("]") else w for w in words]
            argv: list[str] = []
            for word in [*words, "&&"]:
                if word in ("&&", ";", "||"):
                    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):  # WANDB_MODE=online rlhf-bench
                        argv.pop(0)
                    if argv:
                        commands.append(argv)
                    argv = []
                else:
                    argv.append(word)
    return commands


COMMANDS = [(page, argv) for page in PAGES for argv in _command_lines(page)]


def _app_args(argv: list[str]) -> list[str] | None:
    """The `rlhf-bench` arguments of a line that runs the app, None for any other line."""
    if argv[0] == "rlhf-bench":
        return argv[1:]
    if "bench.app" in argv and argv[argv.index("bench.app") - 1] == "-m":  # torchrun, accelerate launch, python -m
        return argv[argv.index("bench.app") + 1 :]
    return None


def _overrides(args: list[str]) -> list[str]:
    """The overrides of an `rlhf-bench` command line, its Hydra flags checked and left out."""
    overrides, rest = [], iter(args)
    for arg in rest:
        if arg in HYDRA_FLAGS_WITH_VALUE:
            next(rest)
        elif arg.startswith("-"):
            assert arg in HYDRA_FLAGS, (
                f"{arg}: not a flag of rlhf-bench (Hydra's: {sorted(HYDRA_FLAGS | HYDRA_FLAGS_WITH_VALUE)})"
            )
        else:
            overrides.append(arg)
    return overrides


def _first_of_each_sweep(overrides: list[str]) -> tuple[list[str], list[str] | None]:
    """The overrides with every sweep at its first value, and the algorithms an `algo=` sweep of them names."""
    fixed, algos = [], None
    for text, override in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        value = override.value()
        if override.is_sweep_override():
            if isinstance(value, ChoiceSweep):
                values = [Override._get_value_element_as_str(v) for v in value.list]
            elif isinstance(value, RangeSweep | IntervalSweep):
                values = [Override._get_value_element_as_str(value.start)]
            else:
                raise AssertionError(f"{text}: a sweep this test cannot take a first value of ({type(value).__name__})")
            if override.get_key_element() == "algo":
                algos = values
            text = f"{override.get_key_element()}={values[0]}"
        elif override.get_key_element() == "algo":
            algos = [str(value)]
        fixed.append(text)
    return fixed, algos


def _compose(overrides: list[str]):
    """The job's config as the app gets it, typed; the config with Hydra's own node for the sweep's algorithms."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # the launcher's interpolations (`${hydra.sweep.dir}`)
    swept = cfg.hydra.sweeper.get("params") or {}
    with open_dict(cfg):
        del cfg["hydra"]
    return to_object(cfg), swept


def _check_app(overrides: list[str]) -> None:
    fixed, algos = _first_of_each_sweep(overrides)
    if algos is None:  # the sweep's own algorithms: conf/config.yaml's, +comparison=all's, +tune=<algo>'s
        _, swept = _compose(fixed)
        algos = str(swept["algo"]).split(",") if "algo" in swept else []
    for algo in algos:
        _compose([o for o in fixed if not o.startswith("algo=")] + [f"algo={algo}"])


def _help_flags(main) -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    return set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", out.getvalue()))


def _check_flags(tool: str, args: list[str]) -> None:
    with warnings.catch_warnings():  # wandb_workspaces' pydantic-v1 validators, at import
        warnings.simplefilter("ignore", DeprecationWarning)
        if tool == "rlhf-bench-results":
            from bench.results.cli import main
        else:
            from bench.dashboard import main
    known = _help_flags(main)
    unknown = [a.split("=")[0] for a in args if a.startswith("-") and a.split("=")[0] not in known]
    assert not unknown, f"{tool} has no flag {unknown} (its --help lists {sorted(known)})"


def _check_tune(args: list[str]) -> None:
    from bench.tune import parse

    cfg, forwarded = parse(args)
    for algo in cfg.algos:
        _check_app([f"+tune={algo}", f"hydra.sweeper.n_trials={cfg.trials}", f"stage_seed={cfg.search_stage_seed}", *forwarded])
        _check_app([f"algo={algo}", *forwarded])


def check_command(argv: list[str]) -> None:
    """Fails, naming what is wrong, unless the tools accept `argv` as written."""
    if (args := _app_args(argv)) is not None:
        _check_app(_overrides(args))
    elif argv[0] == "rlhf-bench-tune":
        _check_tune(argv[1:])
    elif argv[0] in ("rlhf-bench-results", "rlhf-bench-dashboard"):
        _check_flags(argv[0], argv[1:])
    elif argv[0] in ("bash", "python", "python3"):
        if argv[1] == "-m":
            assert importlib.util.find_spec(argv[2]) is not None, f"no module {argv[2]}"
        else:
            assert (ROOT / argv[1]).is_file(), f"no file {argv[1]}"
    else:
        assert argv[0] in UNCHECKED, f"{argv[0]}: a command this test does not know how to check"


def test_the_pages_show_commands():
    """The extraction finds what the pages hold (a change to it that found nothing would pass everything below)."""
    readme = [" ".join(argv) for page, argv in COMMANDS if page == README]
    assert "rlhf-bench" in readme and "rlhf-bench experiment=tiny" in readme and "python -m pytest" in readme
    assert any(argv[0] == "rlhf-bench-tune" for _, argv in COMMANDS)
    assert any(_app_args(argv) is not None and "hydra/launcher=slurm" in argv for _, argv in COMMANDS)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_command_is_accepted_as_written(page):
    failed = []
    for argv in (argv for p, argv in COMMANDS if p == page):
        try:
            check_command(argv)
        except Exception as e:  # noqa: BLE001  (every failure is reported, with its line)
            failed.append(f"{shlex.join(argv)}\n    {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    assert not failed, f"{_rel(page)}: commands that would fail:\n" + "\n".join(failed)


@pytest.mark.parametrize(
    "line",
    [
        "rlhf-bench algo=grpo algo.bta=0.2",  # a misspelt key
        "rlhf-bench -m algo=ppo,grpoo",  # a misspelt option, second in a sweep
        "rlhf-bench algo.group_size=4",  # a key of GRPO's, but the sweep also runs PPO and DPO
        "rlhf-bench hydra/launcher=slurm hydra.launcher.partitionn=gpu",  # a misspelt launcher key
        "rlhf-bench -m +tune=ppo hydra.sweeper.n_trialz=8",  # a misspelt sweeper key
        "rlhf-bench algo.lr=-1",  # out of range
        "rlhf-bench --cgf job",  # a misspelt flag
        "rlhf-bench-tune task=arithmetic tune.trails=8",  # a misspelt tune key
        "rlhf-bench-tune task=arithmetc",  # a misspelt option forwarded to every run
        "rlhf-bench-results --outdir results multirun/x",  # a flag the tool does not have
        "bash scripts/no_such_script.sh",
    ],
)
def test_a_wrong_line_fails(line):
    """What the check above would say of a wrong line: each of these fails it."""
    with pytest.raises((AssertionError, HydraException, ValueError)):
        check_command(shlex.split(line))
