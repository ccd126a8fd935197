"""The dry run as a person reads it: ``describe(result)``, the text ``corpusbeam index
--dry-run`` prints (``--json`` prints ``DryRunResult.to_dict()`` instead)."""

from __future__ import annotations

from pipeline.dry_run import DryRunResult

__all__ = ["describe"]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe(r: DryRunResult) -> str:
    """The dry run for a person: what would be embedded, in how many requests, how long
    it would take and what it would cost."""
    lines: list[str] = []
    add = lines.append
    live = f"live version {r.live_version}" if r.live_version else "no live version"
    add(f"dry run of {r.output} ({live}; nothing sent, nothing written)")
    if r.nothing_to_do:
        add("  no input file nor setting changed: a run would do nothing")
        add(f"  {r.documents['unchanged']} documents, {r.chunks['total']} chunks unchanged")
        return "\n".join(lines)
    d, c, t = r.documents, r.chunks, r.tokens
    add(
        f"  documents: {d['new']} new, {d['changed']} changed, {d['deleted']} deleted, "
        f"{d['unchanged']} unchanged" + (f", {d['failed']} failing" if d["failed"] else "")
    )
    if r.reuse:
        reused = f"{c['reused']} reused"
    else:
        reused = "none reused (" + ("other settings" if r.live_version else "no live version") + ")"
    add(
        f"  chunks and images: {c['total']}; {c['to_embed']} to embed, {reused}"
        + (f", {c['checkpointed']} from checkpoints" if c["checkpointed"] else "")
        + f", {c['deleted']} deleted"
        + (f" (and {c['images']} images)" if c["images"] else "")
    )
    how = f"calibrated x{t['ratio']:.3f}" if t["calibrated"] else "not calibrated"
    add(f"  tokens to embed: about {t['to_embed']:,} ({t['counter']}, {how})")
    add(f"  requests: about {r.requests:,}")
    if r.seconds is not None:
        add(
            f"  time at the live run's rate ({r.rate_tokens_per_second:,.0f} tokens/s): "
            f"about {_duration(r.seconds)}"
        )
    if r.cost is not None:
        add(f"  cost at {r.price_per_million_tokens:g} a million tokens: {r.cost:.6f}")
    add(f"  calibration: {t['calibration']}")
    if r.read_info:
        add(f"  model {r.model} (limit {r.token_limit} tokens), from the endpoint's /info")
    add(f"  the dry run took {r.elapsed_seconds:.1f} s")
    return "\n".join(lines)
