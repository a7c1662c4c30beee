"""Execute a NeuralNetwork model (the .mlmodel format) in numpy, layer by layer (the layers: nn.py).

Precision. A NeuralNetwork declares no types for its intermediate tensors: "the intermediate
tensors are automatically typed at runtime by the compute unit responsible for executing the
layer producing them ... The GPU and ANE use float 16 precision, and the CPU uses float 32"
(coremltools, docs-guides/source/typed-execution.md, "Neural Network Untyped Tensors"). The
weights follow the tensors: "the weights are dequantized at runtime to match the precision of
the intermediate tensors (float 32 or float 16 depending on execution unit)" (coremltools,
docs-guides/source/quantization-neural-network.md). So in precision "gpu/ane":
  - every WeightParams (kernels, biases, batchnorm statistics, constants) is rounded to float16;
  - the model's inputs, after the image scaler, are rounded to float16 (the first layer reads fp16);
  - each layer's output is rounded to float16 (values past 65504 become inf, as in an fp16 tensor);
  - the arithmetic inside a layer stays float32: the GPU accumulates in higher precision unless an
    app sets MLModelConfiguration.allowLowPrecisionAccumulationOnGPU (default false); the Neural
    Engine's accumulator width is not documented, and the same rule is used for it.
Scalar layer parameters (a leaky ReLU's alpha, a clip's bounds) are plain floats in the spec, not
weights, and stay float32. The ML Program "gpu/ane" precision rounds the same way, at each fp16-typed op.
In precision "cpu" everything is float32, which Core ML's CPU guarantees.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedOpError
from .kernels import round_fp16
from .nn import LAYERS, _conv
from .nn_fusion import conv_chains
from .precision import checked_precision
from .workspace import last_reads, release


def _round_weights(message) -> None:
    """Round every float32 WeightParams inside a layer's params to float16, in place (gpu/ane precision)."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        for sub in ([value] if hasattr(value, "DESCRIPTOR") else value):  # one message, or a repeated field
            if sub.DESCRIPTOR.name != "WeightParams":
                _round_weights(sub)
            elif len(sub.floatValue):
                sub.floatValue[:] = round_fp16(np.asarray(sub.floatValue, np.float32)).tolist()
            elif len(sub.rawValue):
                sub.rawValue = round_fp16(np.frombuffer(sub.rawValue, np.float32)).tobytes()


class NeuralNetworkProgram:
    """precision "cpu": float32 throughout, as Core ML's CPU runs it; "gpu/ane": float16 tensors and
    weights, as the GPU and the Neural Engine run it (the rule is in this module's docstring).
    outputs: every name the caller reads after a run; fuse=False runs each layer on its own
    (nn_fusion.py: the same bits, slower)."""

    def __init__(self, nn, precision: str = "cpu", outputs: tuple[str, ...] = (), fuse: bool = True):
        self.precision = checked_precision(precision)
        if precision == "gpu/ane":  # round a copy: the caller's spec keeps its stored weights
            nn = type(nn).FromString(nn.SerializeToString())
            for layer in nn.layers:
                _round_weights(layer)
        self.layers = [(layer.WhichOneof("layer"), layer) for layer in nn.layers]
        unknown = sorted({k for k, _ in self.layers} - set(LAYERS))
        if unknown:
            raise UnsupportedOpError(
                f"NeuralNetwork layer(s) {', '.join(unknown)} not implemented by the reference evaluator; "
                "the model cannot be checked on this machine (run the bench on a Mac, or use --coreml-format mlprogram)"
            )
        # (inputs, output, kernel, its params, takes a list?) per layer; adapt() may swap a kernel
        self.steps = [(list(layer.input), layer.output[0], LAYERS[kind][1], getattr(layer, kind), LAYERS[kind][0])
                      for kind, layer in self.layers]
        # convs that pad their input and finish their output (fp16 rounding, activations) themselves
        fused, self.taken = conv_chains(self.layers, set(outputs), precision) if fuse else ({}, set())
        for index, (source, output, extra) in fused.items():
            _, _, _, params, many = self.steps[index]
            self.steps[index] = ([source], output, lambda p, x, extra=extra: _conv(p, x, **extra), params, many)
        self.finished = {index for index, (*_, extra) in fused.items() if "post" in extra}  # stored as made
        self.preprocessing = {p.featureName: p for p in nn.preprocessing}
        self.consts = {layer.output[0]: LAYERS[kind][1](layer.loadConstantND, [])  # computed once
                       for kind, layer in self.layers if kind == "loadConstantND"}
        # The names each layer reads last, released after it runs: holding every feature map of a
        # batch made MobileNetV2 224 2.3 times slower (fresh memory is page-faulted in again).
        self.dies = last_reads([[] if i in self.taken else inputs for i, (inputs, *_) in enumerate(self.steps)],
                               set(outputs) | set(self.consts))

    def adapt(self, plan) -> None:
        """Swap in the batch-taking kernels of nn_batching.nn_batch_plan (each the same at batch 1)."""
        for index, kernel in plan:
            inputs, output, _, params, many = self.steps[index]
            self.steps[index] = (inputs, output, kernel, params, many)

    def _preprocess(self, name: str, x: np.ndarray) -> np.ndarray:
        p = self.preprocessing.get(name)
        if p is None or p.WhichOneof("preprocessor") != "scaler":
            return x
        s = p.scaler
        bias = np.array([s.redBias, s.greenBias, s.blueBias], np.float32).reshape(1, 3, 1, 1)
        return x * np.float32(s.channelScale or 1.0) + bias

    def _store(self, x) -> np.ndarray:
        """A tensor as the unit that produced it holds it."""
        return round_fp16(x) if self.precision == "gpu/ane" else np.asarray(x, np.float32)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.precision == "cpu":
            return self._run(feeds)
        with np.errstate(over="ignore", invalid="ignore"):  # fp16 infinities are values here, not accidents
            return self._run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = {k: self._store(self._preprocess(k, v)) for k, v in feeds.items()}
        env.update(self.consts)
        for index, ((kind, layer), (inputs, output, fn, params, many), dies) in enumerate(
                zip(self.layers, self.steps, self.dies)):
            if kind == "loadConstantND" or index in self.taken:
                continue
            try:
                xs = [env[i] for i in inputs]
                out = fn(params, xs) if many else fn(params, xs[0])
            except (ValueError, IndexError, KeyError) as exc:
                raise UnsupportedOpError(f"NeuralNetwork layer {layer.name} ({kind}) failed: {exc}") from None
            del xs  # (a dead input goes to the workspace below only if nothing else holds it)
            env[output] = out if index in self.finished else self._store(out)
            release(env, dies)
        return env
