"""kmnist_core: the engine of KMNIST Lab - datasets, model zoo, trainer, runs,
evaluation, drawing preprocessing, sweeps and the job manager. No Streamlit here:
the app's pages are views over this package, and `python -m kmnist_core` drives it
from a terminal."""

__version__ = "0.1.0"
