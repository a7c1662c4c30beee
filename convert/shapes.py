"""The model as it is converted: every input with fixed sizes, and a functional graph.

Mobile artifacts have fixed tensor shapes, so `--input-shape NAME=1x224x224x3`
gives the sizes an app will feed to an input declared with None. A subclassed
model has no symbolic inputs for the converters to trace, so it is wrapped
behind keras.Input. The result is also saved as dist/reference, so `bench`
evaluates the very model that was converted without repeating the flag.
"""

from __future__ import annotations

import re
import weakref
from typing import Sequence

from convert.errors import UnsupportedLayerError, UsageError

SUBCLASSED_INPUT = "input"  # the one input name of a wrapped subclassed model


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """--input-shape NAME=1x20x8 (repeatable) -> {NAME: (1, 20, 8)}; syntax only, before any model is loaded."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, sep, dims = (part.strip() for part in value.partition("="))
        if not sep or not name or not dims:
            raise UsageError(f"--input-shape {value!r}: give NAME=DIMS with the batch first, "
                             f"e.g. --input-shape {name if sep else 'NAME'}={dims if sep else name or '1x224x224x3'}")
        bad = next((d for d in dims.lower().split("x") if not re.fullmatch(r"\d+", d) or int(d) < 1), None)
        if bad is not None:
            raise UsageError(f"--input-shape {value}: dimension {bad!r} is not a positive whole number; "
                             "give sizes > 0 separated by x, batch first, as in 1x224x224x3")
        if name in shapes:
            raise UsageError(f"--input-shape {name} is given twice; give each input once")
        shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
    return shapes


def example_shape(name: str, shape: tuple) -> str:
    """NAME=1x..., the batch as 1 and each None as a typical size (224 for an image, 32 otherwise)."""
    typical = 224 if len(shape) == 4 else 32
    return f"{name}=" + "x".join(["1"] + [str(typical if d is None else d) for d in shape[1:]])


def declared_inputs(model) -> list[tuple[str, tuple, str]]:
    """(name, shape with batch, dtype) of each input; a subclassed model's one input from its build config."""
    if _has_inputs(model):
        return [(t.name, tuple(t.shape), str(t.dtype)) for t in model.inputs]
    built = (model.get_build_config() or {}).get("input_shape") if hasattr(model, "get_build_config") else None
    if built is None:
        return [(SUBCLASSED_INPUT, None, "float32")]  # rank unknown: --input-shape must give it all
    if not all(d is None or isinstance(d, int) for d in built):
        raise UnsupportedLayerError(f"{type(model).__name__} is a subclassed model with several inputs ({built}); "
                                    "save it as a functional model, keras.Model(inputs, outputs), to convert it")
    return [(SUBCLASSED_INPUT, (None, *tuple(built)[1:]), "float32")]  # its batch was whatever built it


def _has_inputs(model) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):  # a subclassed model has no symbolic inputs
        return False


def fixed_model(model, shapes: dict[str, tuple[int, ...]]):
    """`model` with the given sizes, as a functional model; the same object when nothing changes."""
    inputs = declared_inputs(model)
    unknown = [n for n in shapes if n not in {name for name, _, _ in inputs}]
    if unknown:
        listed = ", ".join(f"{n} {s if s is not None else '(rank unknown)'}" for n, s, _ in inputs)
        raise UsageError(f"--input-shape {unknown[0]}=...: the model has no input {unknown[0]!r}; its inputs: {listed}")
    fixed = [_fixed(name, shape, shapes.get(name)) for name, shape, _ in inputs]
    functional = _has_inputs(model)
    if functional and fixed == [shape for _, shape, _ in inputs]:
        return model
    if any(shape is None for shape in fixed):
        raise UnsupportedLayerError(
            f"{type(model).__name__} is a subclassed model saved before it was built, so its input shape is unknown; "
            f"give it with --input-shape {SUBCLASSED_INPUT}=1x... (batch first)")
    import keras

    new_inputs = [keras.Input(batch_shape=shape, name=name, dtype=dtype)
                  for (name, _, dtype), shape in zip(inputs, fixed)]
    return _cloned(model, new_inputs) if functional else _wrapped(model, new_inputs)


def _fixed(name: str, shape: tuple | None, given: tuple[int, ...] | None) -> tuple | None:
    """The declared shape with `given` filling its None sizes; the batch stays as declared."""
    if given is None:
        return shape
    spelled = f"{name}={'x'.join(map(str, given))}"
    if shape is not None and len(given) != len(shape):
        raise UsageError(f"--input-shape {spelled}: input {name!r} has rank {len(shape)}, shape {shape}; "
                         f"give {len(shape)} numbers, e.g. --input-shape {example_shape(name, shape)}")
    if given[0] != 1:
        raise UsageError(f"--input-shape {spelled}: the first number is the batch, and mobile artifacts take one "
                         f"sample per call; give 1x{'x'.join(map(str, given[1:]))}")
    if shape is None:  # an unbuilt subclassed model: the user's shape is all there is
        return (None, *given[1:])
    for axis, (declared, size) in enumerate(zip(shape[1:], given[1:]), 1):
        if declared is not None and declared != size:
            raise UsageError(f"--input-shape {spelled}: input {name!r} has shape {shape}, whose size at axis {axis} "
                             f"is fixed at {declared}, not {size}; e.g. --input-shape {example_shape(name, shape)}")
    if shape[0] not in (None, 1):
        raise UsageError(f"--input-shape {spelled}: input {name!r} has a fixed batch of {shape[0]}; "
                         "mobile artifacts take one sample per call, so re-save the model with a free batch")
    # The Keras model keeps a free batch: bench evaluates it in batches, and the
    # converters already give the artifacts a batch of 1.
    return (shape[0], *given[1:])


def _cloned(model, new_inputs):
    """The same layers and weights on fixed inputs; wrapped instead when cloning would rename anything."""
    import keras

    names = lambda m: ([layer.name for layer in m.layers], _output_names(m))  # noqa: E731
    try:
        clone = keras.models.clone_model(model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0])
        clone.set_weights(model.get_weights())
    except (ValueError, TypeError, KeyError):  # nested or shared layers some graphs cannot clone
        return _wrapped(model, new_inputs)
    # Apps and reports refer to outputs by name, so the clone must keep every name.
    return clone if names(clone) == names(model) else _wrapped(model, new_inputs)


def _output_names(model) -> list[str]:
    # A Sequential model has no output_names: its output is its last layer's.
    return list(getattr(model, "output_names", None) or [model.layers[-1].name])


def _wrapped(model, new_inputs):
    import keras

    outputs = model(new_inputs if len(new_inputs) > 1 else new_inputs[0])
    return keras.Model(new_inputs if len(new_inputs) > 1 else new_inputs[0], outputs, name=model.name)


def load_fixed(path, unsafe: bool = False, custom_objects: Sequence[str] = (), input_shapes: Sequence[str] = ()):
    """The Keras model as convert sees it: custom objects given, None sizes fixed, functional."""
    from train.loading import load_keras_model

    return fixed_model(load_keras_model(path, unsafe, custom_objects), parse_input_shapes(input_shapes))


# Keras model -> its unrolled copy (None: it has no recurrent layer). Every conversion of a model asks for it:
# four TFLite and up to three Core ML conversions, a budget search's every candidate.
_UNROLLED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def unrolled(model):
    """`model` with every recurrent layer unrolled over its fixed sequence length; the same object when it has none.

    coremltools cannot convert the while loop a Keras 3 RNN layer traces to: its TF2 frontend fails
    rewriting the loop's condition (an IndexError in _eliminate_loop_cond_nodes, which expects the
    loop counter Keras 2 wrote, not Keras 3's maximum_iterations). Unrolled, an LSTM/GRU/SimpleRNN
    is the same matmuls and activations once per time step, which every converter takes.
    """
    if model not in _UNROLLED:
        _UNROLLED[model] = _unrolled(model)
    return _UNROLLED[model] or model


def _unrolled(model):
    import keras

    def is_rnn(layer):
        return isinstance(layer, keras.layers.RNN) and not layer.unroll

    def walk(layers):
        for layer in layers:
            yield layer
            if isinstance(layer, keras.layers.Bidirectional):
                yield from (layer.forward_layer, layer.backward_layer)
            elif isinstance(layer, keras.Model):  # a nested Sequential or functional model
                yield from walk(layer.layers)

    if not any(is_rnn(layer) for layer in walk(model.layers)):
        return None

    def clone(layer):
        if isinstance(layer, keras.Model):
            return unrolled(layer)
        if not (is_rnn(layer) or isinstance(layer, keras.layers.Bidirectional)):
            return layer  # shared as it is: nothing to change, and a custom layer's config may not rebuild it
        config = layer.get_config()
        if is_rnn(layer):
            config["unroll"] = True
        else:
            for key in ("layer", "backward_layer"):
                if key in config:
                    config[key]["config"]["unroll"] = True
        return layer.__class__.from_config(config)

    rnn = next(layer for layer in walk(model.layers) if is_rnn(layer))
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except (ValueError, TypeError, KeyError) as exc:  # a subclassed model, or a layer Keras cannot rebuild
        raise UnsupportedLayerError(
            f"layer {rnn.name!r} ({type(rnn).__name__}) must be unrolled to convert, and {type(model).__name__} "
            f"{model.name!r} cannot be rebuilt with it unrolled ({type(exc).__name__}: {str(exc)[:120]}); "
            f"create the layer with unroll=True, or save the model as a functional keras.Model") from exc
    return copy
