"""The search run: epochs of the chosen method, with logs, checkpoints, resume and outputs.

``SearchLoop(cfg, out_dir, env).run(resume=False)`` builds the data and the method, then for every
epoch: run it (``PhaseDriver``), average BN statistics over ranks, derive the genotype, log, and
checkpoint (atomically; rank 0 writes, every rank reads on resume). At the end it writes
``genotype.json``, the cell drawings, the α plot and ``summary.json``.

Out directory::

    config.json        resolved config + versions, seed, world size (rank 0)
    log.jsonl          step records (every ``log_every`` steps) and epoch records
    ckpt/last.pt       the checkpoint after the last finished epoch
    genotype.json      the result; cell_normal.svg, cell_reduce.svg; alphas.png
    summary.json       time, search cost, final accuracies, genotype, profile
    tb/                TensorBoard events (when tensorboard is installed)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


from ... import __version__
from ...config import save_config, to_dict
from ...errors import ConfigError, WriteError
from ...space import Genotype
from ...space.supernet import op_alphas
from ...utils.budget import check_budget, network_estimate
from ...utils.distributed import (DistEnv, barrier, broadcast_, seed_everything, sync_batchnorm_stats,
                                  tune_backends)
from ...utils.finite import check_finite_state, kept_checkpoint
from ...utils.io import atomic_write_json, os_reason
from ...utils.logging import JsonlLogger, console, rewind_jsonl
from ...utils.progress import Progress
from ...utils.rundir import check_run_dir, claim_run_dir, mark_finished
from ...utils.runstate import check_finite_config, check_resume_config as _check_resume, restoring
from .checkpoint import checkpoint_path, load_search_checkpoint, save_search_checkpoint, set_rng_state
from ..config import SearchConfig
from .inputs import build_search_data
from ..methods import MethodContext, build_method
from .driver import PhaseDriver
from .reporting import (diagnostics_summary, alpha_entropy, alpha_weights, format_summary, plot_alphas, profile_summary,
                        tensorboard_writer)

__all__ = ["SearchLoop", "SearchResult", "RUNTIME_KEYS"]

#: Config keys a resumed run may change (they do not change what is computed).
RUNTIME_KEYS = ("stop_after_epochs", "device", "threads", "log_every", "tensorboard", "keep_checkpoints",
                "data.data_dir", "data.workers", "data.download")


@dataclass
class SearchResult:
    genotype: Genotype
    history: list
    out_dir: Path
    config: SearchConfig
    completed: bool = True            # False when stopped early by stop_after_epochs
    summary: dict = field(default_factory=dict)


def check_resume_config(saved: dict, cfg: SearchConfig, where: str = "the search") -> None:
    """A resumed run must compute the same thing: only RUNTIME_KEYS may differ from the saved run."""
    _check_resume(saved, cfg, runtime_keys=RUNTIME_KEYS, where=where)


def _scalars(tb, prefix: str, record: dict, step: int) -> None:
    if tb is not None:
        for k, v in record.items():
            if isinstance(v, float):
                tb.add_scalar(f"{prefix}/{k}", v, step)


def _records_through(records: list[dict], epochs_done: int) -> int:
    """How many log records belong to the first ``epochs_done`` epochs: up to that epoch's record (all
    of them when it is missing, e.g. a log started by hand)."""
    if epochs_done == 0:
        return 0 if any(r.get("event") == "epoch" for r in records) else len(records)
    for i in range(len(records) - 1, -1, -1):
        r = records[i]
        if r.get("event") == "epoch" and r.get("epoch") == epochs_done:
            return i + 1
    return len(records)


class SearchLoop:
    def __init__(self, cfg: SearchConfig, out_dir: str | Path, env: DistEnv, *, quiet: bool = False):
        self.cfg, self.out, self.env = cfg, Path(out_dir), env
        self.quiet = quiet
        self.ckpt = checkpoint_path(self.out)
        self.method = None
        self.data = None
        self.history: list[dict] = []

    # -- helpers --------------------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if not self.quiet:
            console(msg)

    def _last_checkpoint(self) -> str:
        return str(self.ckpt) if self.ckpt.exists() else "none (no epoch finished yet)"

    def _estimate(self):
        """The memory of the Parent and Child supernets at this batch and image size."""
        cfg, data, s = self.cfg, self.data, self.cfg.supernet
        return network_estimate(f"the supernet (supernet.C={s.C}, supernet.layers={s.layers}, {data.image_size}px, "
                                f"batch {cfg.data.batch_size})", C=s.C, layers=s.layers,
                                image_size=data.image_size, in_channels=data.in_channels,
                                num_classes=data.num_classes, layout=cfg.layout,
                                batch=max(cfg.data.batch_size // self.env.world_size, 1), supernet=True,
                                partial_channels=s.partial_channels, networks=2)

    def _epoch_record(self, epoch: int, out: dict, elapsed: float) -> dict:
        alphas = self.method.alphas()
        g = self.method.genotype()
        rec = {"event": "epoch", "epoch": epoch + 1}
        rec.update(out)
        rec.update(alpha_entropy=alpha_entropy(op_alphas(alphas)),
                   alpha_weights=alpha_weights(op_alphas(alphas)),
                   alphas=[a.detach().cpu().tolist() for a in alphas], genotype=g.to_darts(),
                   elapsed_s=elapsed)
        return rec

    def _console_line(self, rec: dict, total: int) -> str:
        keys = ("parent_CE", "parent_acc", "teacher_acc", "child_acc", "G", "D", "L_R", "rho",
                "G_share", "A_P", "A_C", "sample_acc")
        parts = [f"{k} {rec[k]:.4g}" for k in keys if isinstance(rec.get(k), float)]
        return (f"epoch {rec['epoch']}/{total} ({rec.get('phase', '')} {rec.get('round', '')}) "
                + " ".join(parts) + f" | {rec.get('time_s', 0):.1f} s | H(α) {rec['alpha_entropy']:.3f}")

    # -- the run ---------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchResult:
        """Run (or resume) the search. The run directory is checked first (reading only), the inputs
        next (config, data, method), and only then claimed (marker, lock) and written to."""
        check_finite_config(self.cfg)
        check_run_dir(self.out, "search", resume=resume, probe_lock=self.env.is_main)
        self._check_out_dir(resume, load=False)
        seed_everything(self.cfg.seed, self.cfg.deterministic)
        tune_backends(self.env.device, self.cfg.deterministic)
        self.data = build_search_data(self.cfg, self.env)
        check_budget(self._estimate(), hint="supernet.C, supernet.layers, data.batch_size or data.resolution")
        self.method = build_method(MethodContext(self.cfg, self.data, self.env.device))
        with claim_run_dir(self.out, "search", resume=resume, enabled=self.env.is_main) as run:
            try:
                result = self._run(resume)
                if result.completed:
                    mark_finished(run)
                return result
            except OSError as exc:  # a writer without its own WriteError (drawings, plots, events)
                raise WriteError(exc.filename or self.out, os_reason(exc),
                                 kept_checkpoint(self.ckpt)) from None

    def _run(self, resume: bool) -> SearchResult:
        cfg, env, out = self.cfg, self.env, self.out
        data, method = self.data, self.method
        state = self._check_out_dir(resume)      # again, under the lock: another process may have won
        total = method.num_epochs()
        start, elapsed_before = self._restore(state) if state is not None else (0, 0.0)
        if state is not None and env.is_main:
            dropped = rewind_jsonl(out / "log.jsonl", lambda recs: _records_through(recs, start))
            if dropped:
                console(f"note: {out / 'log.jsonl'}: {dropped} line(s) after the checkpoint's epoch {start} "
                        f"removed; they are logged again as the run continues")
        if state is None and env.is_main:
            save_config(cfg, out / "config.json",
                        extra={"seed": cfg.seed, "world_size": env.world_size, "device": str(env.device),
                               "method": cfg.method, "software": f"dcpnas {__version__}"})
        barrier()

        logger = JsonlLogger(out / "log.jsonl", enabled=env.is_main)
        tb = tensorboard_writer(out, cfg.tensorboard) if env.is_main else None

        def on_step(rec):
            logger.log(rec)
            _scalars(tb, "step", rec, rec["global_step"])

        steps_total = sum(method.epoch_steps(e) for e in range(start, total))
        progress = Progress(steps_total, f"search {cfg.method}", enabled=env.is_main and not self.quiet)
        driver = PhaseDriver(data.train, data.val, max_steps=cfg.schedule.steps_per_epoch,
                             log_every=cfg.log_every, on_step=on_step, progress=progress,
                             last_checkpoint=self._last_checkpoint,
                             global_step=sum(int(h.get("steps", 0)) for h in self.history))
        logger.log({"event": "resume" if resume else "start", "epochs_done": start, "epochs": total,
                    "method": cfg.method, "world_size": env.world_size, "device": str(env.device)})
        t0 = time.perf_counter()
        completed = True
        try:
            for epoch in range(start, total):
                out_epoch = method.run_epoch(epoch, driver)
                sync_batchnorm_stats(*method.networks())
                broadcast_(method.sync_tensors())
                elapsed = elapsed_before + time.perf_counter() - t0
                rec = self._epoch_record(epoch, out_epoch, elapsed)
                self.history.append(rec)
                logger.log(rec)
                _scalars(tb, "epoch", rec, epoch + 1)
                self._save(epoch + 1, elapsed)
                if progress.tty and not self.quiet:
                    progress.set_postfix(epoch=f"{epoch + 1}/{total}", phase=rec.get("phase", ""),
                                         **{k: rec[k] for k in ("parent_acc", "child_acc", "G", "D")
                                            if isinstance(rec.get(k), float)})
                else:
                    self._say(self._console_line(rec, total))
                if (cfg.stop_after_epochs and epoch + 1 - start >= cfg.stop_after_epochs
                        and epoch + 1 < total):
                    completed = False
                    self._say(f"stopped after epoch {epoch + 1}/{total} (stop_after_epochs="
                              f"{cfg.stop_after_epochs}); continue with --resume")
                    break
        finally:
            progress.close()
            logger.close()
            if tb is not None:
                tb.close()
        elapsed = elapsed_before + time.perf_counter() - t0
        genotype = method.genotype()
        try:
            summary = self._finish(genotype, elapsed, total) if completed else {}
        except WriteError as exc:   # the search itself is safe in its checkpoint
            raise WriteError(exc.path, exc.reason, f"{kept_checkpoint(self.ckpt)}; --resume writes the "
                                                   f"results again") from None
        return SearchResult(genotype, self.history, out, cfg, completed, summary)

    def _check_out_dir(self, resume: bool, load: bool = True) -> Optional[dict]:
        """The checkpoint to resume from (None for a fresh run, or when not ``load``); refuses to mix
        runs."""
        if resume and not self.ckpt.exists():
            raise ConfigError(f"nothing to resume in {self.out}: {self.ckpt} does not exist")
        if not resume and self.ckpt.exists():
            raise ConfigError(f"{self.out} already holds a search run; pass --resume to continue it or "
                              f"choose another --out")
        if not resume or not load:
            return None
        state = load_search_checkpoint(self.ckpt, map_location=self.env.device)
        check_resume_config(state["config"], self.cfg, str(self.out))
        return state

    def _restore(self, state: dict) -> tuple[int, float]:
        with restoring(self.ckpt):
            for name, batches in (("train", self.data.train), ("val", self.data.val)):
                if name in state.get("data", {}) and hasattr(batches, "load_state_dict"):
                    batches.load_state_dict(state["data"][name])  # checks it is the same data
            self.method.load_state_dict(state["method_state"])
            self.history = list(state["history"])
            set_rng_state(state["rng"])
        start = int(state["epochs_done"])
        self._say(f"resuming {self.out} after epoch {start}/{self.method.num_epochs()}")
        return start, float(state["elapsed_s"])

    def _save(self, epochs_done: int, elapsed: float) -> None:
        """Checkpoint (rank 0 writes, everyone waits): last.pt, and epoch_NNN.pt if kept."""
        cfg = self.cfg
        # Every rank checks (their states are equal), so that all stop together, before any waits.
        method_state = self.method.state_dict()
        check_finite_state(method_state, what=f"the checkpoint after epoch {epochs_done}",
                           kept=kept_checkpoint(self.ckpt), hint="lower optim.w.lr or optim.alpha.lr")
        if self.env.is_main:
            paths = [self.ckpt]
            if cfg.keep_checkpoints:
                paths.append(self.ckpt.with_name(f"epoch_{epochs_done:03d}.pt"))
            data_state = {name: b.state_dict() for name, b in (("train", self.data.train),
                                                              ("val", self.data.val))
                          if hasattr(b, "state_dict")}
            for path in paths:
                save_search_checkpoint(path, epochs_done=epochs_done, method=cfg.method,
                                       method_state=method_state, history=self.history,
                                       elapsed_s=elapsed, config=to_dict(cfg), data_state=data_state,
                                       previous=self.ckpt)
        barrier()

    def _finish(self, genotype: Genotype, elapsed: float, total: int) -> dict:
        cfg, env, out = self.cfg, self.env, self.out
        final = self.method.final_accuracies()
        if not env.is_main:
            return {}
        from ...space.draw import draw_cell

        genotype.save(out / "genotype.json")
        drawings = {}
        for cell in ("normal", "reduce"):
            drawings[cell] = str(draw_cell(genotype, cell, out / f"cell_{cell}.svg"))
        plot = plot_alphas(self.history, out / "alphas")
        gpu = env.device.type == "cuda"
        hours = elapsed / 3600 * env.world_size
        summary = {
            "format": "dcpnas-search-summary/1", "method": cfg.method, "epochs": total,
            "dataset": cfg.data.dataset, "seed": cfg.seed, "world_size": env.world_size,
            "device": str(env.device), "wall_time_s": elapsed,
            "search_cost": {"hours": hours, "unit": "GPU-hours" if gpu else "CPU-process-hours",
                            "days": hours / 24},
            "final": final, "genotype": genotype.to_dict(), "genotype_darts": genotype.to_darts(),
            "diagnostics": diagnostics_summary(self.history),
            "last_epoch": {k: v for k, v in self.history[-1].items()
                           if k not in ("alphas", "alpha_weights")} if self.history else {},
            "files": {"genotype": str(out / "genotype.json"), "cells": drawings,
                      "alphas_plot": None if plot is None else str(plot),
                      "log": str(out / "log.jsonl"), "checkpoint": str(self.ckpt)},
            "out_dir": str(out),
        }
        prof = profile_summary(genotype, cfg.data.dataset)
        if prof is not None:
            summary["profile"] = prof
        atomic_write_json(out / "summary.json", summary)
        self._say(format_summary(summary))
        return summary

