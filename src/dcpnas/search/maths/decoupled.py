"""Decoupled optimisation: a learnable, masked backtrack of the α update (Eqs. 4.50–4.53, Decision O).

After the ordinary architecture step α^{t+1} = α^t − η₁∇L, the op columns whose weights are
"under-trained" (small ‖w_m‖², Eq. 4.53) are pulled back towards α^t's direction:

    α̃^{t+1}_{:,m} = α^{t+1}_{:,m} + η · ψ̃ ⊛ α^t_{:,m}   if rank(R(w_m)) > τ      (4.52, P(·))
    α̃^{t+1}_{:,m} = α^{t+1}_{:,m}                       otherwise

with η = η₁η₂ (architecture lr × weight lr) and a learnable ψ̃ ≥ 0, one entry per edge, kept per
cell type, updated by ψ̃ ← |ψ̃ − η_ψ ∂L/∂ψ̃| (4.51).

Parametrisation (docs/METHOD.md, Decision O). η = η₁η₂ comes from unrolling plain-SGD updates;
with Adam on α the book's product makes the backtrack ~1e-6 of the α step and moves ψ̃ by ~1e-9
per update (measured): inert. ``parametrization="phi"`` (the default) learns the product
φ = η·ψ̃ directly — the same rules with η ≡ 1 — so the coefficient starts at φ₀ and moves at its
own rate; ``"book"`` multiplies ψ̃ by η = η₁η₂ as printed. In this module ``psi`` is the learned
coefficient of either form and ``eta(...)`` the factor in front of it.

How the book's inconsistent indexing is resolved. The book writes α_{e,m} with e an edge and m an
operation, ranks R(w_m) for m = 1..M (ops), and makes ψ̃ an E-vector (one entry per edge), but
then says "the subscript ·m denotes a specific edge". We read α ∈ ℝ^{E×M} with rows = edges and
columns = ops (the layout of ``Supernet.arch_parameters()``): α_{:,m} is op m's column over all
edges, the ranking is over ops, and ψ̃ ∈ ℝ^E multiplies that column element-wise (the only reading
in which ψ̃ ⊛ α_{:,m} has matching shapes and R(w_m) indexes what is ranked). ``rank_scope="edge"``
is the alternative of docs/METHOD.md#decision-o: rank the ops of each edge by its own R[e, m].

Ranking: descending, rank 1 = the largest norm, ties broken by op index (lower first); an op is
backtracked when its rank exceeds τ. Only ops with parameters are ranked (parameter-free ops have
R ≡ 0, which carries no information); τ defaults to half the number of ranked ops (M/2 with M the
ranked ops: 2 of the 4 parametric DCP-NAS ops; τ = 4 of 8 would never select one of them).
``include_parameter_free=True`` lets the parameter-free columns always qualify.

Protocol per architecture step t (the loop's order):
    g = ∇_α L(α^t)                      # this step's architecture gradient
    dec.update_psi(g)                   # ψ̃ learns from the previous backtrack (chain rule)
    dec.remember(alphas)                # α^t, before the optimiser step
    arch_optimizer.step()               # α^{t+1}
    dec.apply(alphas, R, eta)           # α̃^{t+1}, R = supernet.op_weight_sq_norms()
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ...space.primitives import PARAMETRIC, PRIMITIVES

RANK_SCOPES = ("column", "edge")
PARAMETRIZATIONS = ("phi", "book")


class DecoupledOptimization:
    """State and rules of the decoupled optimisation for ``num_cell_types`` α tensors (E × M).

    num_edges, num_ops: E and M of each α tensor.
    psi_init: initial ψ̃ (every entry); psi_lr: η_ψ (method default: the architecture lr η₁).
    tau: ranking threshold (default: half the number of ranked ops, see the module docstring).
    rank_scope: ``column`` (book: one ranking of R_m = Σ_e R[e, m] per cell type) or ``edge``.
    include_parameter_free: parameter-free ops always qualify for the backtrack.
    parametrization: ``phi`` (learn φ = η·ψ̃; ``eta`` returns 1) or ``book`` (ψ̃, η = η₁η₂).
    parametric_ops: indices of the ops that are ranked (default: the parametric DCP-NAS
      primitives when M = len(PRIMITIVES), else every op).
    """

    def __init__(self, num_edges: int = 14, num_ops: int = 8, *, psi_lr: float,
                 psi_init: float = 1e-3, tau: Optional[int] = None, rank_scope: str = "column",
                 include_parameter_free: bool = False,
                 parametric_ops: Optional[Sequence[int]] = None, num_cell_types: int = 2,
                 parametrization: str = "book", device=None, dtype: torch.dtype = torch.float32):
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"unknown parametrization {parametrization!r}; expected one of "
                             f"{PARAMETRIZATIONS}")
        self.parametrization = parametrization
        if rank_scope not in RANK_SCOPES:
            raise ValueError(f"unknown rank scope {rank_scope!r}; expected one of {RANK_SCOPES}")
        if parametric_ops is None:
            parametric_ops = ([i for i, name in enumerate(PRIMITIVES) if name in PARAMETRIC]
                              if num_ops == len(PRIMITIVES) else range(num_ops))
        self.parametric_ops = sorted({int(i) for i in parametric_ops})
        if not self.parametric_ops or not all(0 <= i < num_ops for i in self.parametric_ops):
            raise ValueError(f"parametric_ops must be non-empty indices in 0..{num_ops - 1}")
        self.tau = len(self.parametric_ops) // 2 if tau is None else int(tau)
        self.num_edges, self.num_ops = num_edges, num_ops
        self.psi_lr = float(psi_lr)
        self.rank_scope = rank_scope
        self.include_parameter_free = include_parameter_free
        self.psi = [torch.full((num_edges,), float(psi_init), device=device, dtype=dtype)
                    for _ in range(num_cell_types)]
        self._alpha_prev: Optional[list[torch.Tensor]] = None
        self._index_cache: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        # (α^t, mask, η) of the last backtrack, consumed by the next update_psi.
        self._pending: Optional[tuple[list[torch.Tensor], list[torch.Tensor], float]] = None

    def eta(self, arch_lr: float, weight_lr: float) -> float:
        """The factor in front of the learned coefficient: η₁η₂ (book) or 1 (phi)."""
        return arch_lr * weight_lr if self.parametrization == "book" else 1.0

    def coefficient_mean(self) -> torch.Tensor:
        """Mean of the learned coefficient (φ or ψ̃) over edges and cell types, for the log (a
        float64 tensor on ψ̃'s device: reading it is the caller's choice)."""
        return torch.cat([p.flatten() for p in self.psi]).double().mean()

    # -- the mask -----------------------------------------------------------------------------------
    def _indices(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The ranked and the parameter-free op indices on ``device``, copied there once (a copy
        from host memory every α-step would queue a transfer on a GPU's stream each time)."""
        if self._index_cache is None or self._index_cache[0].device != device:
            free = [i for i in range(self.num_ops) if i not in self.parametric_ops]
            self._index_cache = (torch.tensor(self.parametric_ops, device=device),
                                 torch.tensor(free, dtype=torch.long, device=device))
        return self._index_cache

    def mask(self, R: torch.Tensor) -> torch.Tensor:
        """Boolean E × M mask of the (edge, op) entries to backtrack, from R = ‖w‖² per (edge, op)."""
        if R.shape != (self.num_edges, self.num_ops):
            raise ValueError(f"R has shape {tuple(R.shape)}, expected "
                             f"({self.num_edges}, {self.num_ops})")
        ranked, free = self._indices(R.device)
        scores = R.sum(dim=0, keepdim=True) if self.rank_scope == "column" else R
        scores = scores.index_select(1, ranked)
        # Rank 1 = the largest norm. A stable descending sort keeps lower op indices first on ties.
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(1, order.shape[1] + 1, device=R.device)
                       .expand_as(order).contiguous())
        selected = torch.zeros(scores.shape[0], self.num_ops, dtype=torch.bool, device=R.device)
        selected[:, ranked] = ranks > self.tau
        if self.include_parameter_free:
            selected[:, free] = True
        return selected.expand(self.num_edges, self.num_ops)

    # -- the protocol -------------------------------------------------------------------------------
    def _to(self, like: torch.Tensor) -> None:
        for i, p in enumerate(self.psi):
            if p.device != like.device or p.dtype != like.dtype:
                self.psi[i] = p.to(like.device, like.dtype)

    @torch.no_grad()
    def remember(self, alphas: Sequence[torch.Tensor]) -> None:
        """Keep α^t (detached copies), taken just before the architecture optimiser step."""
        self._check_count(alphas)
        self._to(alphas[0])
        self._alpha_prev = [a.detach().clone() for a in alphas]

    @torch.no_grad()
    def apply(self, alphas: Sequence[torch.Tensor], R: Sequence[torch.Tensor],
              eta: float) -> list[torch.Tensor]:
        """Backtrack in place: α[:, m] += η ψ̃ ⊙ α^t[:, m] on the masked entries (Eq. 4.52).

        R: ``op_weight_sq_norms()`` of the supernet ([R_normal, R_reduce]); eta: η = η₁η₂.
        Returns the masks used. Needs ``remember`` first.
        """
        if self._alpha_prev is None:
            raise RuntimeError("DecoupledOptimization.apply needs remember(α^t) first")
        self._check_count(alphas)
        self._check_count(R)
        masks = []
        for a, a_prev, psi, r in zip(alphas, self._alpha_prev, self.psi, R):
            m = self.mask(r.to(a.device))
            a.add_(eta * psi.unsqueeze(1) * a_prev * m)
            masks.append(m)
        self._pending = (self._alpha_prev, masks, float(eta))
        self._alpha_prev = None
        return masks

    @torch.no_grad()
    def update_psi(self, alpha_grads: Sequence[torch.Tensor]) -> Optional[list[torch.Tensor]]:
        """ψ̃ ← |ψ̃ − η_ψ ∂L/∂ψ̃| with ∂L/∂ψ̃_e = Σ_{m∈mask} g_{e,m}·η·α^t_{e,m} (Eq. 4.51).

        alpha_grads: ∂L/∂α at the backtracked α̃^{t+1} (the next step's architecture gradient).
        Consumes the last ``apply``; returns the ψ̃-gradients, or None when there was none.
        """
        if self._pending is None:
            return None
        self._check_count(alpha_grads)
        alpha_prev, masks, eta = self._pending
        self._pending = None
        psi_grads = []
        for psi, g, a_prev, m in zip(self.psi, alpha_grads, alpha_prev, masks):
            d = (g.to(a_prev) * eta * a_prev * m).sum(dim=1)
            psi.copy_((psi - self.psi_lr * d).abs())
            psi_grads.append(d)
        return psi_grads

    def forget(self) -> None:
        """Drop the remembered α^t and the pending ψ̃ update (ψ̃ itself is kept).

        For when α was overwritten from outside (architecture inheritance α̂ ← α): the chain
        α̃ = α + η ψ̃ ⊙ α^t no longer links ψ̃ to the next gradient.
        """
        self._alpha_prev = None
        self._pending = None

    # -- state ----------------------------------------------------------------------------------------
    def parameters_for_sync(self) -> list[torch.Tensor]:
        """The ψ̃ tensors (updated in place), for code that keeps them identical across ranks.

        They move to the α device on the first ``remember``; take them after that.
        """
        return list(self.psi)

    def state_dict(self) -> dict:
        """ψ̃, the remembered α^t and the pending backtrack (all cloned)."""
        pending = None
        if self._pending is not None:
            prev, masks, eta = self._pending
            pending = {"alpha_prev": [p.clone() for p in prev],
                       "masks": [m.clone() for m in masks], "eta": eta}
        return {"psi": [p.clone() for p in self.psi],
                "alpha_prev": (None if self._alpha_prev is None
                               else [a.clone() for a in self._alpha_prev]),
                "pending": pending}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (ψ̃ copied into the existing tensors)."""
        if len(state["psi"]) != len(self.psi):
            raise ValueError(f"state has {len(state['psi'])} ψ̃ tensors, expected {len(self.psi)}")
        for dst, src in zip(self.psi, state["psi"]):
            dst.copy_(src.to(dst.device, dst.dtype))
        prev = state.get("alpha_prev")
        self._alpha_prev = None if prev is None else [a.clone() for a in prev]
        pending = state.get("pending")
        self._pending = (None if pending is None else
                         ([p.clone() for p in pending["alpha_prev"]],
                          [m.clone() for m in pending["masks"]], float(pending["eta"])))

    def _check_count(self, tensors: Sequence) -> None:
        if len(tensors) != len(self.psi):
            raise ValueError(f"expected {len(self.psi)} tensors (one per cell type), "
                             f"got {len(tensors)}")
