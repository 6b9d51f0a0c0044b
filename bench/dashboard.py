"""`rlhf-bench-dashboard ENTITY/PROJECT [--sweep TAG]`: a wandb workspace with the comparison's panels.

Built with `wandb-workspaces`: runs grouped by their wandb group (the run identity minus seeds:
one line per configuration, the mean over seeds with its standard error band), filtered to one
sweep's tag when given one, and these sections, every curve against `compute/flops`:

    Comparison   gold reward, accuracy, proxy reward, KL to the reference
    Frontier     gold reward against KL to the reference; proxy against gold reward
    Cost         memory per model, peak memory per phase, generation share, achieved FLOP/s
    Training     the train/* metrics the trainers share

`--print` writes the workspace spec as JSON instead of saving it (no network needed).
"""

from __future__ import annotations

import argparse
import json
import sys

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

X = "compute/flops"


def _curves(*metrics: str) -> list[wr.LinePlot]:
    return [wr.LinePlot(title=m, x=X, y=[m], groupby_aggfunc="mean", groupby_rangefunc="stderr") for m in metrics]


def build_workspace(entity: str, project: str, sweep: str | None = None) -> ws.Workspace:
    sections = [
        ws.Section(name="Comparison", is_open=True, panels=_curves("eval/gold_reward", "eval/accuracy", "eval/proxy_reward", "eval/kl_to_ref")),
        ws.Section(name="Frontier", is_open=True, panels=[
            wr.ScatterPlot(title="reward-KL frontier", x="eval/kl_to_ref", y="eval/gold_reward"),
            wr.ScatterPlot(title="proxy vs gold reward", x="eval/gold_reward", y="eval/proxy_reward"),
        ]),  # fmt: skip
        ws.Section(name="Cost", panels=[
            wr.BarPlot(title="memory per model (bytes)", metrics=[f"memory/{m}/{k}_bytes" for m in ("policy", "critic", "reference", "reward_model")
                                                                for k in ("param", "grad", "optimizer")]),
            *_curves("memory/peak_bytes/rollout", "memory/peak_bytes/update", "perf/generation_share", "perf/flops_per_s"),
        ]),  # fmt: skip
        # what tuning chooses on (the validation prompts); the comparison above is the test prompts
        ws.Section(name="Validation", panels=_curves("val/gold_reward", "val/accuracy")),
        ws.Section(name="Training", panels=_curves("train/loss", "train/kl", "train/entropy", "train/clip_frac", "train/grad_norm")),
    ]
    settings = ws.RunsetSettings(groupby=[ws.Metric("Group")], filters=ws.And(ws.Tags().isin([f"sweep:{sweep}"])) if sweep else "")
    name = f"rlhf-bench: {sweep}" if sweep else "rlhf-bench"
    return ws.Workspace(entity=entity, project=project, name=name, sections=sections, runset_settings=settings,
                        settings=ws.WorkspaceSettings(x_axis=X))  # fmt: skip


def spec(workspace: ws.Workspace) -> dict:
    """What the workspace shows, as plain data: its grouping, filter and each section's panels."""
    def panel(p) -> dict:
        axes = {"x": p.x, "y": p.y} if hasattr(p, "x") else {"metrics": p.metrics}
        return {"type": type(p).__name__, "title": p.title} | axes

    return {
        "name": workspace.name,
        "x_axis": workspace.settings.x_axis,
        "groupby": [g.name for g in workspace.runset_settings.groupby],
        "filters": str(workspace.runset_settings.filters),
        "sections": {s.name: [panel(p) for p in s.panels] for s in workspace.sections},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlhf-bench-dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("project", metavar="ENTITY/PROJECT")
    parser.add_argument("--sweep", metavar="TAG", help="only the runs of this sweep (its directory name, as tagged `sweep:<name>`)")
    parser.add_argument("--print", action="store_true", help="print the workspace spec instead of saving it to wandb")
    args = parser.parse_args(argv)
    if args.project.count("/") != 1:
        parser.error(f"expected ENTITY/PROJECT, got {args.project!r}")
    workspace = build_workspace(*args.project.split("/"), sweep=args.sweep)
    if args.print:
        print(json.dumps(spec(workspace), indent=2))
        return 0
    workspace.save()
    print(workspace.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
