"""Classical phase-retrieval baselines: ``twf``, ``sparta`` and ``copram``.

All three recover a real image ``x`` from magnitudes ``y = |L x|`` where ``L`` is the linear part
of a ``phase`` operator (``problem.A.linear_part``): a real Gaussian ``m x n`` matrix with
N(0, 1/m) entries, or coded diffraction patterns (complex measurements, real images). For the
Gaussian matrix only the global sign of ``x`` is lost; for coded diffraction of a real image
likewise (a global factor ``-1``).

References
----------
.. [TWF] Y. Chen and E. J. Candes, "Solving random quadratic systems of equations is nearly as
   easy as solving linear systems", NeurIPS 2015; Comm. Pure Appl. Math. 70(5), 2017.
.. [SPARTA] G. Wang, L. Zhang, G. B. Giannakis, M. Akcakaya and J. Chen, "Sparse phase retrieval
   via truncated amplitude flow", IEEE Trans. Signal Process. 66(2), 2018 (arXiv:1611.07641,
   2016).
.. [TAF] G. Wang, G. B. Giannakis and Y. C. Eldar, "Solving systems of random quadratic
   equations via truncated amplitude flow", IEEE Trans. Inf. Theory 64(2), 2018 (the
   orthogonality-promoting initialisation SPARTA builds on).
.. [CoPRAM] G. Jagatap and C. Hegde, "Fast, sample-efficient algorithms for structured phase
   retrieval", NeurIPS 2017.
.. [CoSaMP] D. Needell and J. A. Tropp, "CoSaMP: iterative signal recovery from incomplete and
   inaccurate samples", Appl. Comput. Harmon. Anal. 26(3), 2009.

Conventions shared by the three solvers
---------------------------------------
* The papers take rows ``a_i ~ N(0, I_n)``; our rows are ``a_i / sqrt(m)``. The gradients of the
  papers, divided by ``m``, are exactly the same expressions written with ``L`` (e.g.
  ``(1/m) sum_i (a_i^T z - psi_i sign(a_i^T z)) a_i = L^T (L z - y sign(L z))``), so the papers'
  step sizes apply unchanged; the only place the row scale enters is the truncation ratio
  ``|a_i^T z| / ||z|| = sqrt(m) |(L z)_i| / ||z||``, written that way below.
* The norm estimate ``sqrt(mean_i psi_i^2)`` of the papers is ``||y||`` in our units
  (``E ||L x||^2 = ||x||^2`` for both matrices).
* Coded diffraction: signs become phases ``u / |u|``; every gradient or back-projection uses
  ``L.adjoint``, which returns the real part (adjoints for the real inner product ``Re<a, b>``),
  i.e. the gradient with respect to a real image. Spectral matrices are never formed: their
  leading eigenvectors come from power iterations ``v <- P_S L^T(w * L(P_S v))``.
* Sparsity (``sparta``, ``copram``) is in the pixel basis. Default ``k`` (``sparsity=None``):
  ``k = min(n // 4, floor(m / (2 ln n)))`` (at least 1): the largest sparsity for which the
  ``m`` measurements exceed twice the ``k ln n`` sample complexity of the sparse estimators,
  capped at a quarter of the pixels. It depends on ``m`` and ``n`` only, never on the data's
  ground truth.
* Support estimate (``sparta``, ``copram``): the ``k`` largest marginals
  ``(1/m) sum_i y_i^2 a_ij^2`` for the Gaussian matrix (as in both papers). For coded diffraction
  ``|a_ij|`` is constant, so these marginals carry no information; there the support is the
  ``k`` largest entries of the (dense) leading eigenvector of the same initialisation matrix
  over all pixels.
* ``twf`` and ``sparta`` take the papers' steps with one safeguard (``backtrack=True``): a step
  that raises the amplitude misfit (``sparta``), or raises it above twice its smallest value so
  far (``twf``), is rejected and the step size halved. In the regimes where the papers'
  iterations converge it did not trigger (the iterates are the papers'); outside them it turns
  divergence (``twf`` with ``m < n``) or limit cycles (``sparta``, ``mu = 1`` with an oversized
  sparsity) into a finite estimate.
* ``loss`` in each :class:`~napari_genprior.solvers.common.Update` is the amplitude misfit ``mean_i (|L z|_i - y_i)^2``
  of the current estimate, in normalised units, for all three methods (comparable curves).
* Iterations stop after ``steps``, when the relative change ``||z_{t+1} - z_t|| / ||z_t||``
  falls below ``tol``, or when the consumer sends ``False``. The random start of the power
  iterations is drawn from ``torch.Generator("cpu").manual_seed(problem.seed)``, so a seed gives
  the same result on the same device.

The package: :mod:`._common` (the shared helpers: option checks, power iterations, support
estimates, the step-size safeguard and the safeguarded gradient loop of ``twf`` and ``sparta``),
:mod:`.twf`, :mod:`.sparta` and :mod:`.copram` (one solver each).
"""

from __future__ import annotations

from ._common import default_sparsity
from .copram import solve_copram
from .sparta import solve_sparta
from .twf import solve_twf

__all__ = ["default_sparsity", "solve_copram", "solve_sparta", "solve_twf"]
