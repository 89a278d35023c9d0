"""Widgets for TrainConfig's settings, built from its field metadata: the label, help
text, choices, bounds and step live in config.py, and the CLI reads the same."""

from __future__ import annotations

import dataclasses

from kmnist_core.config import TrainConfig, field_types

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def setting_input(container, name: str, *, key: str, value=None, slider: bool = False, options=None,
                  format_func=str, label: str | None = None, number_format: str = "%g"):
    """The widget for one setting in `container` (st or a column), starting at `value` (default:
    the field's default), under the key `key`. A number is a number input (a slider if asked),
    bounded as the config's validation bounds it; a choice a select box (`options` can narrow
    or order the choices); a flag a checkbox; anything else a text input."""
    f = FIELDS[name]
    meta, kind = f.metadata, field_types()[name]
    value = f.default if value is None else value
    label, help = label or meta["label"], meta["help"]
    choices = list(options if options is not None else meta["choices"] or [])
    if kind is bool:
        return container.checkbox(label, value, key=key, help=help)
    if choices:
        return container.selectbox(label, choices, index=choices.index(value) if value in choices else 0,
                                   key=key, help=help, format_func=format_func)
    if meta["min"] is None:
        return container.text_input(label, value, key=key, help=help)
    if slider:
        return container.slider(label, min_value=meta["min"], max_value=meta["max"], value=value, step=meta["step"],
                                key=key, help=help)
    # Unbounded in the browser, which would keep an out-of-range value typed in with a small red icon
    # while the page went on with the last valid one: the value comes here and is refused beside the
    # field, and the config's validation keeps Start disabled.
    number = container.number_input(label, value=value, step=meta["step"], key=key, help=help,
                                    format=number_format if kind is float else None)
    if not meta["min"] <= number <= meta["max"]:
        container.error(f"{label} must be between {meta['min']:g} and {meta['max']:g}.", icon=":material/block:")
    return number
