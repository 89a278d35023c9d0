"""Development tools kept out of the engine: the benchmarks (`python -m benchmarks`, see
measure.py; `python -m benchmarks.gpu` on a CUDA machine) and the app-in-a-browser set-up
they share with the browser tests and docs/screenshots.py (app_browser.py)."""
