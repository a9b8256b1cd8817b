"""javisbench: the evaluation suite for text-to-sounding-video models.

>>> import javisbench
>>> r = javisbench.evaluate("samples/", bench="javisbench-mini", metrics=["fvd", "clip_score"])  # doctest: +SKIP
>>> r.overall["fvd"], r.to_pandas(), r.cells_frame()                                          # doctest: +SKIP
"""

from javisbench._version import __version__

# the pipeline module ``javisbench.evaluate`` is loaded first, so that the name bound below stays
# the API function (importing a submodule later would otherwise rebind the package attribute)
from javisbench import evaluate as _pipeline  # noqa: F401,E402
from javisbench.api import Results, evaluate, load_results  # noqa: E402

__all__ = ["Results", "__version__", "evaluate", "load_results"]
