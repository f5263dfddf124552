"""Yardstick harness: SWAP=ebmkit|genconv picks the LangevinDynamics and MALA ebmkit's tests see.

ebmkit's tests reach the samplers as ``ebm.LangevinDynamics`` and ``ebm.MALA``; with SWAP=genconv
those names (and ``ebm.samplers``') are genconv's drop-ins. Subclasses ebmkit defines on its own
MALA (``AdaptiveMALA``) keep ebmkit's.
"""

import os

import ebm
import ebm.samplers

SWAP = os.environ.get("SWAP", "")
if SWAP == "genconv":
    import genconv

    for module in (ebm, ebm.samplers):
        module.LangevinDynamics = genconv.EbmkitLangevin
        module.MALA = genconv.EbmkitMALA


def pytest_report_header() -> str:
    return (
        f"ebmkit samplers in use: {ebm.LangevinDynamics.__module__}.{ebm.LangevinDynamics.__name__}, "
        f"{ebm.MALA.__module__}.{ebm.MALA.__name__}"
    )
