"""The commands that look before and after: models, data check, plan, doctor, runs, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import DataError, TuneforgeError
from .app import (
    ChatTemplateOption,
    ColumnOption,
    ConfigOption,
    DataOption,
    MaxLengthOption,
    MethodOption,
    ModelOption,
    app,
    columns_option,
    config_from_options,
    data_app,
    progress_lines,
    say,
)


@app.command()
def models(fits: Annotated[bool, typer.Option("--fits", help="Only models that fit this machine.")] = False) -> None:
    """List the model catalog (parameters, context, licence) with whether it fits this machine (the memory planner's verdict)."""
    from tuneforge.exporters.gguf.types import export_refusal

    from ..api.models import is_downloaded
    from ..catalog import all_models
    from ..fit import model_fit
    from ..hardware import detect

    hardware = detect()
    say(f"device: {hardware.device_label}")
    say(f"{'name':<14} {'size':>6} {'context':>8} {'arch':<12} {'licence':<14} {'fit':<6} {'gguf':<5} {'cached':<7} hub id")
    for spec in all_models():
        fit = model_fit(spec, hardware)
        if fits and fit == "no":
            continue
        gated = " (gated)" if spec.gated else ""
        exports = "no" if export_refusal(spec.architecture) else "yes"
        cached = "yes" if is_downloaded(spec.hub_id) else "-"
        say(f"{spec.name:<14} {spec.size_label:>6} {spec.context:>8} {spec.arch:<12} {spec.license:<14} {fit:<6} {exports:<5} "
            f"{cached:<7} {spec.hub_id}{gated}")
    say("gguf: whether a fine-tune of it exports to GGUF (every model trains and merges); cached: already downloaded")
    say("\nalso: `--model default` (built-in SmolLM2-135M-Instruct), a hub id, a local folder, or a .gguf file")


@data_app.command("check")
def data_check(
    file: Annotated[str, typer.Argument(help="A dataset file (.jsonl, .json, .csv, .tsv, .parquet, .arrow, also .gz), a folder, or a hub dataset id.")],
    model: Annotated[str, typer.Option(help="Model whose tokenizer and chat template measure the data.")] = "default",
    max_length: Annotated[int, typer.Option(help="Longest example in tokens.")] = 512,
    eval_split: Annotated[float | None, typer.Option(help="Fraction held out for eval (default: as a run splits it: none "
                                                        "of a set of answers under 1,000 examples, else 0.1).")] = None,
    column: ColumnOption = None,
    split: Annotated[str | None, typer.Option(help="The split of a hub or saved dataset (default: train).")] = None,
    chat_template: ChatTemplateOption = None,
) -> int:
    """Validate a dataset and report its shape, split and token lengths; exit 1 listing FILE:LINE problems."""
    from ..api.data import check_data

    report = check_data(file, model, max_length, eval_split, columns_option(column), split=split, chat_template=chat_template or "auto")
    say(f"file       {report.path}")
    say(f"shape      {report.shape}")
    if report.problems:
        say(f"problems   {len(report.problems)}")
        for problem in report.problems:
            say(f"  {problem}")
        return 1
    stats = report.stats
    assert stats is not None
    lengths = stats.length_summary()
    say(f"records    {stats.records}")
    if report.labels:
        say(f"labels     {report.labels[0]} good / {report.labels[1]} bad: --method kto learns from both, "
            "the other methods from the good ones alone")
    say(f"split      {stats.train_examples} train / {stats.eval_examples} eval")
    say(f"tokens     min {lengths['min']} · median {lengths['median']} · p95 {lengths['p95']} · max {lengths['max']}")
    say(f"truncated  {stats.truncated} of {len(stats.token_lengths)} at max_length {stats.max_length}"
        + (f" ({stats.dropped} left with nothing to train, skipped)" if stats.dropped else ""))
    share = stats.answer_share
    say(f"trained    {stats.trained_tokens} of {stats.total_tokens} train tokens ({share:.0%}); "
        f"end-of-turn token trained: {'yes' if stats.end_of_turn_trained else 'NO'}")
    if stats.reasoning_dropped:
        say(f"warning    the model's chat template drops the reasoning traces of {stats.reasoning_dropped} record(s): "
            "they would not be learned (a model whose template renders them, e.g. Qwen3, keeps them)")
    histogram = stats.histogram()
    top = max((count for _, _, count in histogram), default=1)
    for low, high, count in histogram:
        say(f"  {low:>6}-{high:<6} {'█' * round(30 * count / top):<30} {count}")
    return 0


@data_app.command("prepare")
def data_prepare(
    sources: Annotated[list[Path], typer.Argument(help="Documents: PDF, DOCX, HTML, Markdown or TXT files, or folders of them.")],
    out: Annotated[Path, typer.Option("--out", help="The folder to write chunks.jsonl, pairs.jsonl, train.jsonl, eval.jsonl and report.json into.")],
    model: Annotated[str, typer.Option(help="Model whose tokenizer measures the chunks (the one you will train).")] = "default",
    generator: Annotated[str | None, typer.Option(
        help="The model that drafts question-answer pairs: default (the built-in model: few of its pairs pass), a .gguf file, "
             "ollama:NAME, or an OpenAI-compatible URL "
             "(http://HOST:PORT/v1, #MODEL to pick one; key from TUNEFORGE_GENERATOR_API_KEY). Without it the chunks train as text.")] = None,
    questions_per_chunk: Annotated[int, typer.Option(help="Questions drafted from each chunk.")] = 3,
    paraphrases: Annotated[int, typer.Option(help="Other wordings drafted for each question (they train the fact, and stay on its side of the split).")] = 0,
    chunk_tokens: Annotated[int, typer.Option(help="Longest chunk in tokens.")] = 512,
    eval_share: Annotated[float, typer.Option(help="Share of the chunks (or, with --generator, of the facts) held out in eval.jsonl.")] = 0.1,
) -> int:
    """Turn documents into a training folder: text extracted (PDF text layer, DOCX, HTML main text, Markdown, TXT),
    cut into chunks by the model's tokenizer, each traceable to its file and page. With --generator, question-answer
    pairs are drafted from each chunk, checked against it and deduplicated; a rerun continues where one stopped."""
    from ..api.data import prepare_documents

    report = prepare_documents(sources, out, model, chunk_tokens, eval_share, echo=say, generator=generator,
                               questions_per_chunk=questions_per_chunk, paraphrases=paraphrases,
                               on_progress=progress_lines(every_item_of="drafting"))
    if not report.train_records:
        raise DataError(f"{out}: none of the {report.pairs_drafted} drafted pair(s) passed the gates; "
                        f"{out / 'pairs.jsonl'} says why each was dropped",
                        "use a stronger --generator (a 3-8B instruct model), or accept pairs in the app's review")
    say(f"next: tuneforge train --model {model} --data {out / 'train.jsonl'}"
        + (f" --eval-data {out / 'eval.jsonl'}" if report.eval_records else ""))
    return 0


@app.command()
def plan(
    model: ModelOption = None,
    data: DataOption = None,
    method: MethodOption = None,
    max_length: MaxLengthOption = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step.")] = None,
    config: ConfigOption = None,
    column: ColumnOption = None,
) -> int:
    """Show the memory a run will need here, term by term, what auto-fit will choose, and what merge and export need."""
    from ..api.runs import plan_run
    from ..fit import checkpointing_state

    with_data = data is not None or config is not None
    run_config = config_from_options(config, model=model, data=data or "-", method=method, max_length=max_length,
                                      batch_size=batch_size, columns=columns_option(column))
    report = plan_run(run_config, with_data=with_data)
    fit, estimate = report.fit, report.fit.plan
    say(f"device: {report.hardware.device_label}")
    say(f"{report.model} ({report.params_b:.3g} B parameters), {report.method}: batch {fit.batch_size} × grad_accum "
        f"{fit.grad_accum}, longest batch {fit.max_length} tokens, gradient checkpointing "
        f"{checkpointing_state(fit)}" + ("" if with_data else " (no --data: every example max_length long)"))
    for name, gb in estimate.parts:
        say(f"  {name:<20} {gb:7.2f} GB")
    if estimate.reserve_gb:
        say(f"  {'CUDA context':<20} {estimate.reserve_gb:7.2f} GB")
    say(f"  {'total':<20} {estimate.total_gb:7.2f} GB of {estimate.budget_gb:.1f} GB free: {estimate.verdict}")
    for change in fit.changes:
        say(f"auto-fit: {change}")
    for note in report.notes:
        if not note.startswith("auto-fit: "):  # said just above
            say(note)
    hardware = report.hardware
    say(f"after training ({hardware.ram_available_gb:.1f} GB RAM free, {hardware.disk_free_gb:.0f} GB disk free):")
    for phase in (report.merge, report.export):
        room = not phase.shortfalls(hardware.ram_available_gb, hardware.disk_free_gb)
        say(f"  {phase.phase:<7} RAM {phase.ram_gb:6.2f} GB, disk {phase.disk_gb:6.2f} GB: {'fits' if room else 'TOO BIG'}"
            f"  ({phase.detail})")
    return 0 if estimate.verdict != "too big" else 1


@app.command()
def doctor(
    model: ModelOption = None,
    data: DataOption = None,
    method: MethodOption = None,
    config: ConfigOption = None,
) -> int:
    """Check this machine: Python, torch and CUDA, the GPU driver, bitsandbytes, llama.cpp, the default model,
    and memory and disk for a planned run (--model/--data/--config, else a default run); exit 1 on any failure."""
    from ..doctor import run_checks

    planned = None
    if any(option is not None for option in (model, data, method, config)):
        planned = config_from_options(config, model=model, data=data or "-", method=method)
    checks = run_checks(planned)
    for check in checks:
        say(f"{ {'ok': 'ok', 'warn': 'WARN', 'fail': 'FAIL'}[check.status]:<5} {check.name:<17} {check.detail}")
        if check.status != "ok" and check.fix:
            say(f"{'':<23} fix: {check.fix}")
    counts = {status: sum(c.status == status for c in checks) for status in ("ok", "warn", "fail")}
    say(f"\n{len(checks)} checks: {counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed")
    return 1 if counts["fail"] else 0


@app.command()
def runs() -> None:
    """List runs with their state, latest figures (kept: everyday answers the base got right that the tuned model
    still gets right), and the base and method each one trained."""
    from tuneforge.exporters.report import REPORT_FILE

    from ..diagnosis import failure_cause
    from ..runs import list_runs

    found = list_runs()
    if not found:
        say("no runs yet; start one with `tuneforge train --model default --data FILE`")
        return
    say(f"{'run':<40} {'state':<13} {'step':>9} {'loss':>8} {'eval':>8} {'kept':>7}  {'method':<8} base")
    for run_dir in found:
        history = run_dir.history()
        last = history.last_step
        step = f"{last.step}/{last.max_steps}" if last else "-"
        loss = f"{last.loss:.4f}" if last else "-"
        eval_loss = f"{history.last_eval_loss:.4f}" if history.last_eval_loss is not None else "-"
        result = history.finished.result if history.finished else None
        kept = f"{result.general_kept}/{result.general_known}" if result and result.general_known is not None else "-"
        try:
            config = run_dir.load_config()
            method, base = config.method, config.model
            if config.processes * config.nodes > 1:  # e.g. lora×4: four GPUs (or processes)
                method += f"×{config.processes * config.nodes}"
            if config.adapter_from:
                base += f" (continues {Path(config.adapter_from).name})"
        except TuneforgeError:
            method, base = "?", "(unreadable config.yaml)"
        state = run_dir.state(history)
        say(f"{run_dir.name:<40} {state:<13} {step:>9} {loss:>8} {eval_loss:>8} {kept:>7}  {method:<8} {base}")
        if state in ("failed", "stopped"):
            message, hint = failure_cause(run_dir, history=history)
            say(f"  {message.splitlines()[0]}")
            if hint:
                say(f"  hint: {hint}")
        elif state == "export failed":
            say(f"  {run_dir.last_export_failure(history)}")
            say(f"  hint: see {run_dir.export / REPORT_FILE}; export again with `tuneforge export {run_dir.path}`")


@app.command()
def compare(runs: Annotated[list[Path], typer.Argument(help="Finished run directories.")]) -> int:
    """Compare finished runs: method, trainable parameters, peak memory, speed, losses, forgetting, accuracy."""
    from ..api.evaluation import compared_run, format_table

    say(format_table([compared_run(path) for path in runs]))
    return 0
