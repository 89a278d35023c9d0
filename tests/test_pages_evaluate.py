"""AppTest coverage of the Evaluate page."""

from conftest import open_page


def test_evaluate_shows_matrix_pairs_mistakes_and_metrics(app_env, trained_run):
    at = open_page("pages/evaluate.py")
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{trained_run.test_accuracy:.2%}"
    headers = [h.value for h in at.subheader]
    for header in ("Training curves", "Confusion matrix", "Most-confused pairs", "Most confident mistakes",
                   "Per-class metrics", "Random test predictions"):
        assert header in headers
    per_class = at.dataframe[0].value
    assert list(per_class["class"]) == [str(i) for i in range(10)]
    assert any("true **" in c.value and "predicted **" in c.value for c in at.caption)  # the mistakes gallery
    at.toggle(key="evaluate_normalized").set_value(True).run()
    assert not at.exception


def test_no_runs_and_corrupt_checkpoint_are_explained(app_env, trained_run):
    weights = trained_run.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    at = open_page("pages/evaluate.py")
    assert not at.exception
    assert any("cannot be loaded" in e.value and "corrupt or truncated" in e.value for e in at.error)
    weights.unlink()
    at = open_page("pages/evaluate.py")
    assert not at.exception and any("no trained model" in i.value for i in at.info)


def test_any_failure_to_load_the_dataset_or_model_is_one_line_on_the_pages(app_env, trained_run, monkeypatch):
    """Issue 13, item 24: a damaged dataset or model can fail in any way; the page says so in one line."""
    import pickle

    import streamlit as st

    from kmnist_core import data, runs

    def unpickling(*args, **kwargs):
        raise pickle.UnpicklingError("invalid load key, 'x'.")

    monkeypatch.setattr(data, "load_dataset", unpickling)
    for page in ("pages/evaluate.py", "pages/dataset.py", "pages/features.py", None):
        at = open_page(page)
        assert not at.exception, page
        assert any("UnpicklingError: invalid load key" in e.value and "\n" not in e.value for e in at.error), page
    monkeypatch.setattr(runs, "load_model", lambda *args, **kwargs: [][0])  # an IndexError nobody foresaw
    st.cache_resource.clear()  # the model the pages above loaded
    at = open_page("pages/draw.py")
    assert not at.exception and any("This model cannot be loaded: IndexError" in e.value for e in at.error)
